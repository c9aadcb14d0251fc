//! Test support only: safe wrappers over a small C shim (`src/shim.c`)
//! that drives Debian's libwolfssl ECCSI (RFC 6507) and SAKKE (RFC 6508)
//! with byte strings, for mcx-ibc's interop tests (each side's output
//! read by the other) and its side-by-side benchmark.
//!
//! Formats: points `0x04 || X || Y`, ECCSI signatures `r || s || PVT`
//! (129 octets), SAKKE encapsulated data `R || H` (273 octets).

use std::ffi::c_int;

#[repr(C)]
struct EccsiCtx {
    _opaque: [u8; 0],
}

#[repr(C)]
struct SakkeCtx {
    _opaque: [u8; 0],
}

unsafe extern "C" {
    fn mcxw_eccsi_new(
        kpak: *const u8,
        kpak_len: u32,
        id: *const u8,
        id_len: u32,
        ssk: *const u8,
        ssk_len: u32,
        pvt: *const u8,
        pvt_len: u32,
        err: *mut c_int,
    ) -> *mut EccsiCtx;
    fn mcxw_eccsi_free(c: *mut EccsiCtx);
    fn mcxw_eccsi_sign(
        c: *mut EccsiCtx,
        msg: *const u8,
        msg_len: u32,
        sig: *mut u8,
        sig_len: *mut u32,
    ) -> c_int;
    fn mcxw_eccsi_verify(
        c: *mut EccsiCtx,
        id: *const u8,
        id_len: u32,
        msg: *const u8,
        msg_len: u32,
        sig: *const u8,
        sig_len: u32,
        valid: *mut c_int,
    ) -> c_int;
    fn mcxw_sakke_new(
        z: *const u8,
        z_len: u32,
        id: *const u8,
        id_len: u16,
        rsk: *const u8,
        rsk_len: u32,
        table: c_int,
        err: *mut c_int,
    ) -> *mut SakkeCtx;
    fn mcxw_sakke_free(c: *mut SakkeCtx);
    fn mcxw_sakke_encapsulate(c: *mut SakkeCtx, ssv: *const u8, sed: *mut u8) -> c_int;
    fn mcxw_sakke_decapsulate(c: *mut SakkeCtx, sed: *const u8, ssv: *mut u8) -> c_int;
}

/// A wolfCrypt error code (negative), or a length the shim refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WolfError(pub i32);

impl std::fmt::Display for WolfError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "wolfCrypt error {}", self.0)
    }
}

impl std::error::Error for WolfError {}

fn len32(b: &[u8]) -> Result<u32, WolfError> {
    u32::try_from(b.len()).map_err(|_| WolfError(-1))
}

fn check(ret: c_int) -> Result<(), WolfError> {
    if ret == 0 {
        Ok(())
    } else {
        Err(WolfError(ret))
    }
}

/// An ECCSI signer or verifier in wolfCrypt.
pub struct Eccsi(*mut EccsiCtx);

// SAFETY: the context is owned by this value alone and wolfCrypt keeps no
// thread-local state for it.
unsafe impl Send for Eccsi {}

impl Eccsi {
    /// A verifier under the KMS public key `kpak` (65 octets).
    pub fn verifier(kpak: &[u8]) -> Result<Self, WolfError> {
        Self::new(kpak, b"", None)
    }

    /// A signer `id` with its SSK (32 octets) and PVT (65 octets).
    pub fn signer(kpak: &[u8], id: &[u8], ssk: &[u8], pvt: &[u8]) -> Result<Self, WolfError> {
        Self::new(kpak, id, Some((ssk, pvt)))
    }

    fn new(kpak: &[u8], id: &[u8], pair: Option<(&[u8], &[u8])>) -> Result<Self, WolfError> {
        let (ssk, pvt) = pair.unwrap_or((&[], &[]));
        let mut err: c_int = 0;
        // SAFETY: every pointer is valid for its length during the call; a
        // null SSK asks for a verifier; the shim copies what it keeps.
        let c = unsafe {
            mcxw_eccsi_new(
                kpak.as_ptr(),
                len32(kpak)?,
                id.as_ptr(),
                len32(id)?,
                if pair.is_some() {
                    ssk.as_ptr()
                } else {
                    std::ptr::null()
                },
                len32(ssk)?,
                pvt.as_ptr(),
                len32(pvt)?,
                &mut err,
            )
        };
        if c.is_null() {
            return Err(WolfError(err));
        }
        Ok(Self(c))
    }

    /// An RFC 6507 signature of `msg` (129 octets).
    pub fn sign(&mut self, msg: &[u8]) -> Result<Vec<u8>, WolfError> {
        let mut sig = vec![0u8; 256];
        let mut len = 256u32;
        // SAFETY: `sig` has `len` writable octets; `msg` is valid for its length.
        check(unsafe {
            mcxw_eccsi_sign(
                self.0,
                msg.as_ptr(),
                len32(msg)?,
                sig.as_mut_ptr(),
                &mut len,
            )
        })?;
        sig.truncate(len as usize);
        Ok(sig)
    }

    /// Whether `sig` is `id`'s signature of `msg`.
    pub fn verify(&mut self, id: &[u8], msg: &[u8], sig: &[u8]) -> Result<bool, WolfError> {
        let mut valid: c_int = 0;
        // SAFETY: all slices are valid for their lengths during the call.
        check(unsafe {
            mcxw_eccsi_verify(
                self.0,
                id.as_ptr(),
                len32(id)?,
                msg.as_ptr(),
                len32(msg)?,
                sig.as_ptr(),
                len32(sig)?,
                &mut valid,
            )
        })?;
        Ok(valid == 1)
    }
}

impl Drop for Eccsi {
    fn drop(&mut self) {
        // SAFETY: the pointer came from mcxw_eccsi_new and is freed once.
        unsafe { mcxw_eccsi_free(self.0) }
    }
}

/// A SAKKE sender or receiver in wolfCrypt.
pub struct Sakke(*mut SakkeCtx);

// SAFETY: as for `Eccsi`.
unsafe impl Send for Sakke {}

/// SAKKE encapsulated data length (RFC 6508 with the 1024-bit parameters).
pub const SED_LEN: usize = 273;

impl Sakke {
    /// A sender toward `id` under the KMS public key `z` (257 octets).
    pub fn sender(z: &[u8], id: &[u8]) -> Result<Self, WolfError> {
        Self::new(z, id, None, false)
    }

    /// The receiver `id` with its RSK (257 octets); `table`: precompute
    /// wolfCrypt's RSK table.
    pub fn receiver(z: &[u8], id: &[u8], rsk: &[u8], table: bool) -> Result<Self, WolfError> {
        Self::new(z, id, Some(rsk), table)
    }

    fn new(z: &[u8], id: &[u8], rsk: Option<&[u8]>, table: bool) -> Result<Self, WolfError> {
        let id_len = u16::try_from(id.len()).map_err(|_| WolfError(-1))?;
        let rsk_bytes = rsk.unwrap_or(&[]);
        let mut err: c_int = 0;
        // SAFETY: every pointer is valid for its length during the call; a
        // null RSK asks for a sender; the shim copies what it keeps.
        let c = unsafe {
            mcxw_sakke_new(
                z.as_ptr(),
                len32(z)?,
                id.as_ptr(),
                id_len,
                if rsk.is_some() {
                    rsk_bytes.as_ptr()
                } else {
                    std::ptr::null()
                },
                len32(rsk_bytes)?,
                c_int::from(table),
                &mut err,
            )
        };
        if c.is_null() {
            return Err(WolfError(err));
        }
        Ok(Self(c))
    }

    /// The SED carrying `ssv` to this sender's identity.
    pub fn encapsulate(&mut self, ssv: &[u8; 16]) -> Result<[u8; SED_LEN], WolfError> {
        let mut sed = [0u8; SED_LEN];
        // SAFETY: `ssv` has 16 readable octets, `sed` SED_LEN writable ones.
        check(unsafe { mcxw_sakke_encapsulate(self.0, ssv.as_ptr(), sed.as_mut_ptr()) })?;
        Ok(sed)
    }

    /// The SSV a SED carries to this receiver.
    pub fn decapsulate(&mut self, sed: &[u8; SED_LEN]) -> Result<[u8; 16], WolfError> {
        let mut ssv = [0u8; 16];
        // SAFETY: `sed` has SED_LEN readable octets, `ssv` 16 writable ones.
        check(unsafe { mcxw_sakke_decapsulate(self.0, sed.as_ptr(), ssv.as_mut_ptr()) })?;
        Ok(ssv)
    }
}

impl Drop for Sakke {
    fn drop(&mut self) {
        // SAFETY: the pointer came from mcxw_sakke_new and is freed once.
        unsafe { mcxw_sakke_free(self.0) }
    }
}
