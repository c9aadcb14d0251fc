//! The admin API's routes and bodies (served by `mcx run --admin ADDR`):
//!
//! | request | answer |
//! | --- | --- |
//! | `GET /health` | 200 when every role of the process answers within its bound, else 503 (JSON checks) |
//! | `GET /ready` | 200 when every role can serve (servers hold their identity keys, clients are registered), else 503 |
//! | `GET /metrics` | the metrics, OpenMetrics text |
//! | `GET /calls` | the roles' call records, JSON array of [`CallRow`] |
//! | `POST /calls/{Call-ID}/end` | ends that call (percent-encoded Call-ID); 404 if no role holds it |

use serde_json::{Value, json};

/// What an admin request asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminRoute {
    /// `GET /health`.
    Health,
    /// `GET /ready`.
    Ready,
    /// `GET /metrics`.
    Metrics,
    /// `GET /calls`.
    Calls,
    /// `POST /calls/{id}/end`, the Call-ID decoded.
    EndCall(String),
    /// A path the API does not have (404).
    NotFound,
    /// A known path with the wrong method (405), and the one it takes.
    MethodNotAllowed(&'static str),
    /// A malformed percent-encoding in the Call-ID (400).
    BadCallId,
}

/// Routes `method` `target` (path, maybe with a query, which is ignored).
#[must_use]
pub fn route(method: &str, target: &str) -> AdminRoute {
    let path = target.split(['?', '#']).next().unwrap_or_default();
    let get = |r: AdminRoute| {
        if method.eq_ignore_ascii_case("GET") || method.eq_ignore_ascii_case("HEAD") {
            r
        } else {
            AdminRoute::MethodNotAllowed("GET")
        }
    };
    match path {
        "/health" => get(AdminRoute::Health),
        "/ready" => get(AdminRoute::Ready),
        "/metrics" => get(AdminRoute::Metrics),
        "/calls" | "/calls/" => get(AdminRoute::Calls),
        _ => {
            let Some(id) = path
                .strip_prefix("/calls/")
                .and_then(|rest| rest.strip_suffix("/end"))
                .filter(|id| !id.is_empty() && !id.contains('/'))
            else {
                return AdminRoute::NotFound;
            };
            if !method.eq_ignore_ascii_case("POST") {
                return AdminRoute::MethodNotAllowed("POST");
            }
            percent_decode(id).map_or(AdminRoute::BadCallId, AdminRoute::EndCall)
        }
    }
}

/// `%XX` decoding; `None` for a broken escape or a result that is not
/// UTF-8 (a Call-ID is text).
fn percent_decode(s: &str) -> Option<String> {
    // The crate passes a broken escape through as it is: refuse it here.
    let broken = s.match_indices('%').any(|(i, _)| {
        s.get(i + 1..i + 3)
            .is_none_or(|h| !h.bytes().all(|b| b.is_ascii_hexdigit()))
    });
    if broken {
        return None;
    }
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(std::borrow::Cow::into_owned)
}

/// Everything but RFC 3986 unreserved characters.
const NOT_UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `s` with everything but RFC 3986 unreserved characters percent-encoded
/// (what a client puts in `/calls/{id}/end`).
#[must_use]
pub fn percent_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, NOT_UNRESERVED).to_string()
}

/// One check of `/health` or `/ready`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// What was checked (a role URI, `kms`, …).
    pub name: String,
    /// Whether it passed.
    pub ok: bool,
    /// Why not, or what was seen.
    pub detail: String,
}

/// The checks of `/health` or `/ready`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Checks(pub Vec<Check>);

impl Checks {
    /// Adds a check.
    pub fn push(&mut self, name: impl Into<String>, ok: bool, detail: impl Into<String>) {
        self.0.push(Check {
            name: name.into(),
            ok,
            detail: detail.into(),
        });
    }

    /// 200 if every check passed (and there is at least one), else 503.
    #[must_use]
    pub fn status(&self) -> u16 {
        if !self.0.is_empty() && self.0.iter().all(|c| c.ok) {
            200
        } else {
            503
        }
    }

    /// `{"status": "ok"|"failing", "checks": [{"name", "ok", "detail"}]}`.
    #[must_use]
    pub fn to_json(&self) -> String {
        let checks: Vec<Value> = self
            .0
            .iter()
            .map(|c| json!({"name": c.name, "ok": c.ok, "detail": c.detail}))
            .collect();
        let status = if self.status() == 200 {
            "ok"
        } else {
            "failing"
        };
        json!({"status": status, "checks": checks}).to_string()
    }
}

/// One call record of one role, as `GET /calls` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallRow {
    /// The role holding it (its URI).
    pub role: String,
    /// The Call-ID `POST /calls/{id}/end` takes.
    pub call_id: String,
    /// The temporary group.
    pub temporary_group_id: String,
    /// The constituent group, where the role has one.
    pub group_id: Option<String>,
    /// The initiator.
    pub initiator: String,
    /// `setting-up` or `established`.
    pub state: String,
    /// Groups (controlling server), members (MC server) or 1 (client) joined.
    pub joined: usize,
    /// Seconds since the record was created.
    pub age_secs: u64,
}

impl CallRow {
    fn to_value(&self) -> Value {
        json!({
            "role": self.role,
            "call_id": self.call_id,
            "temporary_group_id": self.temporary_group_id,
            "group_id": self.group_id,
            "initiator": self.initiator,
            "state": self.state,
            "joined": self.joined,
            "age_secs": self.age_secs,
        })
    }

    /// The JSON array `GET /calls` answers.
    #[must_use]
    pub fn list_to_json(rows: &[Self]) -> String {
        Value::Array(rows.iter().map(Self::to_value).collect()).to_string()
    }

    /// Reads what [`CallRow::list_to_json`] wrote.
    ///
    /// # Errors
    /// A message naming what is wrong (not JSON, not an array, a missing
    /// or mistyped field and its row).
    pub fn list_from_json(text: &str) -> Result<Vec<Self>, String> {
        let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let Value::Array(items) = v else {
            return Err("not a JSON array of calls".into());
        };
        items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let text = |k: &str| {
                    item.get(k)
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                        .ok_or_else(|| format!("call {i}: no text field {k:?}"))
                };
                let number = |k: &str| {
                    item.get(k)
                        .and_then(Value::as_u64)
                        .ok_or_else(|| format!("call {i}: no number field {k:?}"))
                };
                Ok(Self {
                    role: text("role")?,
                    call_id: text("call_id")?,
                    temporary_group_id: text("temporary_group_id")?,
                    group_id: item
                        .get("group_id")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    initiator: text("initiator")?,
                    state: text("state")?,
                    joined: usize::try_from(number("joined")?)
                        .map_err(|_| format!("call {i}: joined out of range"))?,
                    age_secs: number("age_secs")?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route("GET", "/health"), AdminRoute::Health);
        assert_eq!(route("GET", "/ready?verbose=1"), AdminRoute::Ready);
        assert_eq!(route("GET", "/metrics"), AdminRoute::Metrics);
        assert_eq!(route("GET", "/calls"), AdminRoute::Calls);
        assert_eq!(
            route("POST", "/metrics"),
            AdminRoute::MethodNotAllowed("GET")
        );
        assert_eq!(
            route("POST", "/calls/abc%40host%2F1/end"),
            AdminRoute::EndCall("abc@host/1".into())
        );
        assert_eq!(
            route("GET", "/calls/abc/end"),
            AdminRoute::MethodNotAllowed("POST")
        );
        assert_eq!(route("POST", "/calls/%4/end"), AdminRoute::BadCallId);
        assert_eq!(route("POST", "/calls/%ff/end"), AdminRoute::BadCallId);
        for p in ["/", "/calls//end", "/calls/a/b/end", "/callsx", "/health/x"] {
            assert_eq!(route("POST", p), AdminRoute::NotFound, "{p}");
        }
    }

    #[test]
    fn call_ids_survive_encoding() {
        for id in ["a84b4c76e66710@pc33.atlanta.com", "x/y%z é", ""] {
            let r = route("POST", &format!("/calls/{}/end", percent_encode(id)));
            if id.is_empty() {
                assert_eq!(r, AdminRoute::NotFound);
            } else {
                assert_eq!(r, AdminRoute::EndCall(id.into()));
            }
        }
    }

    #[test]
    fn checks_and_rows_in_json() {
        let mut c = Checks::default();
        assert_eq!(c.status(), 503, "nothing checked is not ready");
        c.push("kms", true, "serving");
        assert_eq!(c.status(), 200);
        c.push("sip:a@x", false, "not registered");
        assert_eq!(c.status(), 503);
        let v: Value = serde_json::from_str(&c.to_json()).unwrap();
        assert_eq!(v["status"], "failing");
        assert_eq!(v["checks"][1]["detail"], "not registered");

        let rows = vec![CallRow {
            role: "sip:ctrl@x".into(),
            call_id: "1@h".into(),
            temporary_group_id: "sip:tg@x".into(),
            group_id: None,
            initiator: "sip:d@x".into(),
            state: "established".into(),
            joined: 2,
            age_secs: 5,
        }];
        assert_eq!(
            CallRow::list_from_json(&CallRow::list_to_json(&rows)).unwrap(),
            rows
        );
        let e = CallRow::list_from_json("[{\"role\": 1}]").unwrap_err();
        assert!(e.contains("call 0") && e.contains("role"), "{e}");
        assert!(CallRow::list_from_json("{}").unwrap_err().contains("array"));
    }
}
