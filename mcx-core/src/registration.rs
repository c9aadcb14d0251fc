//! A client's registration with its home server (RFC 3261 10, TS 24.379
//! 7.2): the MC server of its groups, acting as its participating
//! function, learns that it is reachable, and invites it into calls of
//! its groups that are already going on (late entry).
//!
//! One registration per client: REGISTER with `Expires`, refreshed at 80 %
//! of what the registrar granted, retried with backoff (1 s doubling to
//! 60 s) after a failure, and withdrawn (`Expires: 0`) on shutdown.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use mcx_idms::jwt::TokenVerifier;
use mcx_sip::{Method, Request, Response, new_branch, new_call_id, new_tag};
use rand_core::CryptoRng;

use crate::Error;
use crate::sip::{host_of, rand8, rand16};

/// Where a registration stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RegState {
    /// Not asked for (or withdrawn).
    Idle,
    /// REGISTER sent, no final answer yet.
    Pending,
    /// Granted until then.
    Registered { until: Instant },
    /// Refused or unreachable; retried at `next`.
    Failed,
}

/// The client side of one registration binding.
pub(crate) struct Registration {
    pub(crate) server: String,
    aor: String,
    call_id: String,
    from_tag: String,
    cseq: u32,
    pub(crate) expiry: Duration,
    pub(crate) state: RegState,
    /// When to refresh (registered) or retry (failed).
    pub(crate) next: Option<Instant>,
    backoff: Duration,
}

/// What a registrar's answer meant.
pub(crate) enum Outcome {
    /// Registered for this long.
    Registered(Duration),
    /// Withdrawn (our `Expires: 0` was answered).
    Withdrawn,
    /// Refused or unreachable: retried after the returned wait.
    Failed(Duration),
}

const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

impl Registration {
    pub(crate) fn new(server: &str, aor: &str, expiry: Duration, rng: &mut impl CryptoRng) -> Self {
        let host = host_of(aor);
        Self {
            server: server.to_owned(),
            aor: aor.to_owned(),
            // One Call-ID for every REGISTER of this binding (RFC 3261 10.2).
            call_id: new_call_id(rand16(rng), &host),
            from_tag: new_tag(rand8(rng)),
            cseq: 0,
            expiry,
            state: RegState::Idle,
            next: None,
            backoff: BACKOFF_FIRST,
        }
    }

    /// The next REGISTER: asking for `expires` (zero withdraws).
    pub(crate) fn request(
        &mut self,
        expires: Duration,
        rng: &mut impl CryptoRng,
    ) -> Result<Request, Error> {
        self.cseq += 1;
        let host = host_of(&self.aor);
        let secs = expires.as_secs();
        let req = Request::builder(Method::Register, &self.server)
            .via("UDP", &host, &new_branch(rand8(rng)))
            .max_forwards(70)
            .from(None, &self.aor, &self.from_tag)
            .to(None, &self.aor, None)
            .call_id(&self.call_id)
            .cseq(self.cseq)
            .contact(&format!(
                "<{}>;{};expires={secs}",
                self.aor,
                crate::sip::CONTACT_FEATURE_TAGS
            ))
            .header("Expires", &secs.to_string())
            .build()?;
        self.state = if expires.is_zero() {
            RegState::Idle
        } else {
            RegState::Pending
        };
        self.next = None;
        Ok(req)
    }

    /// Whether `resp` answers our REGISTER (same Call-ID).
    pub(crate) fn answers(&self, resp: &Response) -> bool {
        resp.call_id().is_ok_and(|c| c == self.call_id)
    }

    /// Takes the registrar's final answer.
    pub(crate) fn on_response(&mut self, now: Instant, resp: &Response) -> Outcome {
        let status = resp.status();
        if status.is_success() {
            let granted = granted_expiry(resp).unwrap_or(self.expiry);
            if granted.is_zero() {
                self.state = RegState::Idle;
                self.next = None;
                return Outcome::Withdrawn;
            }
            self.backoff = BACKOFF_FIRST;
            self.state = RegState::Registered {
                until: now + granted,
            };
            // Refresh at 80 % of the grant, before it lapses.
            self.next = Some(now + granted.mul_f64(0.8));
            return Outcome::Registered(granted);
        }
        let wait = self.backoff;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
        self.state = RegState::Failed;
        self.next = Some(now + wait);
        Outcome::Failed(wait)
    }
}

/// The expiry a REGISTER asks for: its Contact's `expires` parameter,
/// else its `Expires` header, else one hour (RFC 3261 10.2.1.1).
pub(crate) fn asked_expiry(req: &Request) -> Duration {
    expiry(req.header("Contact"), req.header("Expires")).unwrap_or(Duration::from_secs(3600))
}

/// The `expires` parameter of a Contact value, else an `Expires` value.
fn expiry(contact: Option<&str>, expires: Option<&str>) -> Option<Duration> {
    let from_contact = contact.and_then(|c| {
        c.split(';')
            .skip(1)
            .find_map(|p| p.trim().strip_prefix("expires="))
            .and_then(|v| v.trim().parse::<u64>().ok())
    });
    let secs = from_contact.or_else(|| expires?.trim().parse().ok())?;
    Some(Duration::from_secs(secs))
}

/// A registrar's 200 to `req`: the binding of `aor` with the `granted`
/// expiry (RFC 3261 10.3 step 8).
pub(crate) fn registered_ok(
    req: &Request,
    aor: &str,
    granted: Duration,
    rng: &mut impl CryptoRng,
) -> Result<Response, Error> {
    let tag = new_tag(rand8(rng));
    let mut ok = Response::for_request(req, mcx_sip::StatusCode::OK, Some(&tag))?;
    let secs = granted.as_secs();
    if secs > 0 {
        ok.headers_mut()
            .push("Contact", &format!("<{aor}>;expires={secs}"))?;
    }
    ok.headers_mut().push("Expires", &secs.to_string())?;
    Ok(ok)
}

/// Whether `req` carries a MIKEY body (a CSK upload).
pub(crate) fn carries_mikey(req: &Request) -> bool {
    req.content_type()
        .is_some_and(|c| c.trim().eq_ignore_ascii_case(crate::MIKEY_CONTENT_TYPE))
}

/// The expiry a registrar granted: the `expires` parameter of our Contact
/// in its answer, else its `Expires` header (RFC 3261 10.2.4).
fn granted_expiry(resp: &Response) -> Option<Duration> {
    expiry(resp.header("Contact"), resp.header("Expires"))
}

/// What a registrar checks of the access token a REGISTER carries (RFC 8898
/// `Authorization: Bearer`; TS 24.379 registration with service
/// authorisation, TS 33.180 B.6.2): valid, unexpired, with the MCPTT
/// service scope, and issued to the user being registered. `Err` is the
/// reason phrase of the 403.
pub(crate) fn check_access_token(
    req: &Request,
    verifier: &TokenVerifier,
    aor: &str,
    now_unix: u64,
) -> Result<(), String> {
    let token = req
        .header("Authorization")
        .and_then(|a| a.trim().strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or("Forbidden - an access token is required (Authorization: Bearer)")?;
    let claims = verifier
        .verify(token, mcx_idms::SCOPE_PTT, now_unix)
        .map_err(|e| format!("Forbidden - access token refused: {e}"))?;
    if claims.mcptt_id != aor {
        return Err("Forbidden - the access token is another user's".into());
    }
    Ok(())
}

/// The registered identities by transport source (`received:rport` of the
/// REGISTER's top Via, stamped by the link): a request is then authorised
/// by who registered from where it comes, never by its From.
#[derive(Debug, Default)]
pub(crate) struct RegisteredSources {
    by_source: HashMap<String, (String, Instant)>,
}

impl RegisteredSources {
    /// Most sources remembered (a registrar serves a bounded population;
    /// past this, expired entries are swept and a new binding replaces
    /// nothing live).
    const MAX: usize = 1 << 20;

    /// `aor` registered from `source` until `until` (or withdrew its
    /// binding, `until` in the past).
    pub(crate) fn bind(&mut self, source: Option<String>, aor: &str, now: Instant, until: Instant) {
        self.by_source.retain(|_, (a, _)| a != aor);
        let Some(source) = source else { return };
        if until <= now {
            return;
        }
        if self.by_source.len() >= Self::MAX {
            self.by_source.retain(|_, (_, u)| *u > now);
            if self.by_source.len() >= Self::MAX {
                return;
            }
        }
        self.by_source.insert(source, (aor.to_owned(), until));
    }

    /// Who is registered from the source of `req`, now.
    pub(crate) fn identity(&self, req: &Request, now: Instant) -> Option<&str> {
        let (aor, until) = self.by_source.get(&req.source()?)?;
        (*until > now).then_some(aor.as_str())
    }
}
