//! Compiles the C shim against Debian's libwolfssl headers (their
//! options.h fixes the structure layouts) and links the library.

fn main() {
    println!("cargo:rerun-if-changed=src/shim.c");
    cc::Build::new()
        .file("src/shim.c")
        .warnings(true)
        .compile("mcx_wolfssl_shim");
    println!("cargo:rustc-link-lib=wolfssl");
}
