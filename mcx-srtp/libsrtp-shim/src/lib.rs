//! TEST SUPPORT ONLY — a minimal FFI shim to Debian's libsrtp2 (2.5,
//! `libsrtp2-dev`), so mcx-srtp's interop tests and benchmark can run
//! libsrtp on the same packets. Not published; not used by mcx-srtp itself.
//!
//! ⚠️ This crate is the only place in the workspace with `unsafe` code: the
//! `extern "C"` declarations mirror `/usr/include/srtp2/srtp.h`, and
//! [`LibSrtp`] wraps one `srtp_t` session with AEAD_AES_128_GCM (16-octet
//! tag) for both RTP and RTCP, optionally with several MKI-named master keys.

use std::ffi::{c_int, c_uint, c_ulong, c_void};
use std::ptr;
use std::sync::Once;

// ------------------------------------------------- srtp.h, libsrtp 2.5

#[repr(C)]
#[derive(Clone, Copy)]
struct SrtpCryptoPolicy {
    cipher_type: u32,
    cipher_key_len: c_int,
    auth_type: u32,
    auth_key_len: c_int,
    auth_tag_len: c_int,
    sec_serv: c_int,
}

#[repr(C)]
struct SrtpSsrc {
    kind: c_int,
    value: c_uint,
}

#[repr(C)]
struct SrtpMasterKey {
    key: *mut u8,
    mki_id: *mut u8,
    mki_size: c_uint,
}

#[repr(C)]
struct SrtpPolicy {
    ssrc: SrtpSsrc,
    rtp: SrtpCryptoPolicy,
    rtcp: SrtpCryptoPolicy,
    key: *mut u8,
    keys: *mut *mut SrtpMasterKey,
    num_master_keys: c_ulong,
    deprecated_ekt: *mut c_void,
    window_size: c_ulong,
    allow_repeat_tx: c_int,
    enc_xtn_hdr: *mut c_int,
    enc_xtn_hdr_count: c_int,
    next: *mut SrtpPolicy,
}

/// `srtp_ctx_t`, opaque.
#[repr(C)]
struct SrtpCtx {
    _private: [u8; 0],
}

const SSRC_ANY_INBOUND: c_int = 2;
const SSRC_ANY_OUTBOUND: c_int = 3;

#[link(name = "srtp2")]
unsafe extern "C" {
    fn srtp_init() -> c_int;
    fn srtp_create(session: *mut *mut SrtpCtx, policy: *const SrtpPolicy) -> c_int;
    fn srtp_dealloc(session: *mut SrtpCtx) -> c_int;
    fn srtp_crypto_policy_set_aes_gcm_128_16_auth(p: *mut SrtpCryptoPolicy);
    fn srtp_protect_mki(
        ctx: *mut SrtpCtx,
        rtp_hdr: *mut c_void,
        pkt_octet_len: *mut c_int,
        use_mki: c_uint,
        mki_index: c_uint,
    ) -> c_int;
    fn srtp_unprotect_mki(
        ctx: *mut SrtpCtx,
        srtp_hdr: *mut c_void,
        len_ptr: *mut c_int,
        use_mki: c_uint,
    ) -> c_int;
    fn srtp_protect_rtcp_mki(
        ctx: *mut SrtpCtx,
        rtcp_hdr: *mut c_void,
        pkt_octet_len: *mut c_int,
        use_mki: c_uint,
        mki_index: c_uint,
    ) -> c_int;
    fn srtp_unprotect_rtcp_mki(
        ctx: *mut SrtpCtx,
        srtcp_hdr: *mut c_void,
        pkt_octet_len: *mut c_int,
        use_mki: c_uint,
    ) -> c_int;
    fn srtp_get_stream_roc(session: *mut SrtpCtx, ssrc: u32, roc: *mut u32) -> c_int;
}

// ------------------------------------------------------------- wrapper

/// Octets libsrtp may write past the packet (`SRTP_MAX_TRAILER_LEN`).
pub const MAX_TRAILER_LEN: usize = 16 + 128;

/// A libsrtp error status (`srtp_err_status_t`), e.g. 7 = auth_fail,
/// 9/10 = replay, 25 = bad_mki.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status(pub i32);

fn check(status: c_int) -> Result<(), Status> {
    if status == 0 {
        Ok(())
    } else {
        Err(Status(status))
    }
}

/// Which way the session works: libsrtp's wildcard SSRC policies are
/// one-directional (`ssrc_any_outbound` / `ssrc_any_inbound`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Protect only.
    Outbound,
    /// Unprotect only.
    Inbound,
}

/// One libsrtp session (`srtp_t`) with AEAD_AES_128_GCM for RTP and RTCP.
pub struct LibSrtp {
    ctx: *mut SrtpCtx,
    use_mki: bool,
    // libsrtp copies keys at srtp_create; these are kept only for clarity of
    // ownership while the call runs.
    _keys: Vec<Vec<u8>>,
}

impl LibSrtp {
    /// A session for `direction` with master keys `(key || salt (28 octets), MKI)`.
    /// With a single key and an empty MKI, MKI is not used.
    ///
    /// # Panics
    /// If libsrtp refuses the policy.
    pub fn new(direction: Direction, keys: &[(&[u8], &[u8])]) -> Self {
        static INIT: Once = Once::new();
        // SAFETY: srtp_init has no preconditions; Once runs it once.
        INIT.call_once(|| check(unsafe { srtp_init() }).expect("srtp_init"));

        let use_mki = !(keys.len() == 1 && keys[0].1.is_empty());
        let mut key_bufs: Vec<Vec<u8>> = Vec::new();
        let mut mki_bufs: Vec<Vec<u8>> = Vec::new();
        for (key, mki) in keys {
            assert_eq!(key.len(), 28, "AES-128-GCM master key || 12-octet salt");
            // libsrtp may read SRTP_MAX_KEY_LEN (64) octets of key material.
            let mut k = key.to_vec();
            k.resize(64, 0);
            key_bufs.push(k);
            mki_bufs.push(mki.to_vec());
        }
        let mut master_keys: Vec<SrtpMasterKey> = key_bufs
            .iter_mut()
            .zip(mki_bufs.iter_mut())
            .map(|(k, m)| SrtpMasterKey {
                key: k.as_mut_ptr(),
                mki_id: m.as_mut_ptr(),
                mki_size: m.len() as c_uint,
            })
            .collect();
        let mut key_ptrs: Vec<*mut SrtpMasterKey> =
            master_keys.iter_mut().map(|k| k as *mut _).collect();

        let empty = SrtpCryptoPolicy {
            cipher_type: 0,
            cipher_key_len: 0,
            auth_type: 0,
            auth_key_len: 0,
            auth_tag_len: 0,
            sec_serv: 0,
        };
        let mut policy = SrtpPolicy {
            ssrc: SrtpSsrc {
                kind: match direction {
                    Direction::Outbound => SSRC_ANY_OUTBOUND,
                    Direction::Inbound => SSRC_ANY_INBOUND,
                },
                value: 0,
            },
            rtp: empty,
            rtcp: empty,
            key: if use_mki {
                ptr::null_mut()
            } else {
                key_bufs[0].as_mut_ptr()
            },
            keys: if use_mki {
                key_ptrs.as_mut_ptr()
            } else {
                ptr::null_mut()
            },
            num_master_keys: if use_mki {
                key_ptrs.len() as c_ulong
            } else {
                0
            },
            deprecated_ekt: ptr::null_mut(),
            window_size: 128,
            allow_repeat_tx: 0,
            enc_xtn_hdr: ptr::null_mut(),
            enc_xtn_hdr_count: 0,
            next: ptr::null_mut(),
        };
        let mut ctx: *mut SrtpCtx = ptr::null_mut();
        // SAFETY: the policy and everything it points to (keys, MKIs, key
        // pointer array) outlive this call; libsrtp copies what it keeps.
        unsafe {
            srtp_crypto_policy_set_aes_gcm_128_16_auth(&mut policy.rtp);
            srtp_crypto_policy_set_aes_gcm_128_16_auth(&mut policy.rtcp);
            check(srtp_create(&mut ctx, &policy)).expect("srtp_create");
        }
        Self {
            ctx,
            use_mki,
            _keys: key_bufs,
        }
    }

    /// `srtp_protect_mki` on `buf[..len]` with the key at `key_index`;
    /// `buf` needs [`MAX_TRAILER_LEN`] spare octets. Returns the new length.
    ///
    /// # Errors
    /// libsrtp's status.
    pub fn protect_rtp(
        &mut self,
        buf: &mut [u8],
        len: usize,
        key_index: u32,
    ) -> Result<usize, Status> {
        assert!(buf.len() >= len + MAX_TRAILER_LEN);
        let mut n = len as c_int;
        // SAFETY: buf is valid for len + MAX_TRAILER_LEN octets, as libsrtp
        // requires; ctx is a live session.
        check(unsafe {
            srtp_protect_mki(
                self.ctx,
                buf.as_mut_ptr().cast(),
                &mut n,
                self.use_mki.into(),
                key_index,
            )
        })?;
        Ok(n as usize)
    }

    /// `srtp_unprotect_mki` on `buf`. Returns the RTP length.
    ///
    /// # Errors
    /// libsrtp's status.
    pub fn unprotect_rtp(&mut self, buf: &mut [u8]) -> Result<usize, Status> {
        let mut n = buf.len() as c_int;
        // SAFETY: buf is valid for n octets; libsrtp only shortens it.
        check(unsafe {
            srtp_unprotect_mki(
                self.ctx,
                buf.as_mut_ptr().cast(),
                &mut n,
                self.use_mki.into(),
            )
        })?;
        Ok(n as usize)
    }

    /// `srtp_protect_rtcp_mki` on `buf[..len]`; `buf` needs
    /// [`MAX_TRAILER_LEN`] + 4 spare octets. Returns the new length.
    ///
    /// # Errors
    /// libsrtp's status.
    pub fn protect_rtcp(
        &mut self,
        buf: &mut [u8],
        len: usize,
        key_index: u32,
    ) -> Result<usize, Status> {
        assert!(buf.len() >= len + MAX_TRAILER_LEN + 4);
        let mut n = len as c_int;
        // SAFETY: as protect_rtp, with room for the SRTCP index too.
        check(unsafe {
            srtp_protect_rtcp_mki(
                self.ctx,
                buf.as_mut_ptr().cast(),
                &mut n,
                self.use_mki.into(),
                key_index,
            )
        })?;
        Ok(n as usize)
    }

    /// `srtp_unprotect_rtcp_mki` on `buf`. Returns the RTCP length.
    ///
    /// # Errors
    /// libsrtp's status.
    pub fn unprotect_rtcp(&mut self, buf: &mut [u8]) -> Result<usize, Status> {
        let mut n = buf.len() as c_int;
        // SAFETY: buf is valid for n octets; libsrtp only shortens it.
        check(unsafe {
            srtp_unprotect_rtcp_mki(
                self.ctx,
                buf.as_mut_ptr().cast(),
                &mut n,
                self.use_mki.into(),
            )
        })?;
        Ok(n as usize)
    }

    /// The ROC libsrtp holds for `ssrc` (`srtp_get_stream_roc`).
    ///
    /// # Errors
    /// libsrtp's status (no such stream).
    pub fn roc(&self, ssrc: u32) -> Result<u32, Status> {
        let mut roc = 0;
        // SAFETY: ctx is a live session; roc is a valid out pointer.
        check(unsafe { srtp_get_stream_roc(self.ctx, ssrc, &mut roc) })?;
        Ok(roc)
    }
}

impl Drop for LibSrtp {
    fn drop(&mut self) {
        // SAFETY: ctx came from srtp_create and is freed once.
        unsafe {
            srtp_dealloc(self.ctx);
        }
    }
}
