//! Temporary groups on demand (group regroup, TS 23.280 10.2.4): an
//! authorised user forms a temporary group from groups it may regroup;
//! the GMS refuses anyone else, unknown groups and groups the user may not
//! regroup before any notice to the controlling server; the group is
//! answered only once the controlling server took it, ends at its
//! lifetime, and only its former dissolves it.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use mcx_gms::regroup::{
    Dissolution, Formation, Handled, Notice, RegroupConfig, RegroupRight, dissolve_request,
    dissolved_notice, formed_notice, parse_notice, parse_regroup_response, regroup_request,
};
use mcx_gms::{Gms, GmsError};
use mcx_kms::http::{HttpRequest, HttpResponse};

const LIFETIME: u64 = 600;

fn rights() -> RegroupConfig {
    RegroupConfig {
        rights: vec![
            RegroupRight {
                user: DISPATCHER.into(),
                groups: vec![GROUP_A.into(), GROUP_B.into()],
            },
            RegroupRight {
                user: ALICE.into(),
                groups: vec![GROUP_A.into()],
            },
        ],
        max_lifetime_secs: LIFETIME,
    }
}

fn gms(w: &mut World) -> Gms {
    let mut gms = w.open(None, default_config(), UNIX0);
    gms.set_regroup(rights()).unwrap();
    gms
}

fn ab() -> Vec<String> {
    vec![GROUP_A.into(), GROUP_B.into()]
}

/// The answer to a request that must not reach the controlling server.
fn refused(gms: &mut Gms, w: &mut World, req: &HttpRequest, now: u64) -> HttpResponse {
    match gms.handle_request(req, now, &mut w.rng) {
        Handled::Answer(r) => r,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// The formation `user` asks for, waiting for the controlling server.
fn formation(gms: &mut Gms, w: &mut World, user: &str, groups: &[String], now: u64) -> Formation {
    match gms.handle_request(&regroup_request(groups, &token(user)), now, &mut w.rng) {
        Handled::Form(f) => f,
        other => panic!("not a formation: {other:?}"),
    }
}

/// The dissolution `user` asks for, waiting for the controlling server.
fn dissolution(gms: &mut Gms, w: &mut World, user: &str, id: &str) -> Dissolution {
    match gms.handle_request(&dissolve_request(id, &token(user)), UNIX0, &mut w.rng) {
        Handled::Dissolve(d) => d,
        other => panic!("not a dissolution: {other:?}"),
    }
}

/// Forms a temporary group of `groups` as `user`, the controlling server
/// taking it; returns its ID.
fn form(gms: &mut Gms, w: &mut World, user: &str, groups: &[String], now: u64) -> String {
    let f = formation(gms, w, user, groups, now);
    let id = f.group.id.clone();
    let r = gms.complete_formation(f, Ok(()));
    assert_eq!(r.status, 201, "{}", body_text(&r));
    id
}

#[test]
fn an_authorised_dispatcher_forms_a_temporary_group() {
    let mut w = World::new(1);
    let mut gms = gms(&mut w);
    let f = formation(&mut gms, &mut w, DISPATCHER, &ab(), UNIX0);
    let g = f.group.clone();
    assert_eq!(g.constituents, ab());
    assert_eq!(g.formed_by, DISPATCHER);
    assert_eq!(g.expires_unix, UNIX0 + LIFETIME);
    assert!(g.id.starts_with("sip:regroup-"), "{}", g.id);
    assert!(g.id.ends_with("@mcx.test"), "{}", g.id);
    // Not held before the controlling server took it.
    assert!(gms.temporary_groups(UNIX0).is_empty());

    // The notice the driver sends reads back as the same group.
    let notice = formed_notice(&g, "gms-token");
    assert_eq!(notice.method, "PUT");
    assert_eq!(notice.bearer_token(), Some("gms-token"));
    assert_eq!(
        parse_notice(&notice).unwrap(),
        Notice::Formed {
            id: g.id.clone(),
            constituents: ab(),
            expires_unix: UNIX0 + LIFETIME,
        }
    );

    let r = gms.complete_formation(f, Ok(()));
    assert_eq!(r.status, 201, "{}", body_text(&r));
    let doc = parse_regroup_response(&r).unwrap();
    assert_eq!(doc.group_id, g.id);
    assert_eq!(doc.members, ab(), "constituent groups as entries");
    assert!(doc.gktps.is_empty());
    assert_eq!(gms.temporary_groups(UNIX0), vec![g.clone()]);

    // Another formation, of group A alone by Alice: another ID.
    let other = form(&mut gms, &mut w, ALICE, &[GROUP_A.into()], UNIX0);
    assert_ne!(other, g.id);
    assert_eq!(gms.temporary_groups(UNIX0).len(), 2);
}

#[test]
fn refusals_come_before_any_notice_and_name_why() {
    let mut w = World::new(2);
    let mut gms = gms(&mut w);
    let mut check = |req: HttpRequest, status: u16, needle: &str| {
        let r = refused(&mut gms, &mut w, &req, UNIX0);
        assert_eq!(r.status, status, "{}", body_text(&r));
        assert!(body_text(&r).contains(needle), "{}", body_text(&r));
    };
    let mut no_token = regroup_request(&ab(), "x");
    no_token.headers.retain(|(n, _)| n != "Authorization");
    check(no_token, 401, "missing bearer token");
    check(regroup_request(&ab(), "wrong"), 401, "invalid bearer token");
    // A user without regroup rights.
    check(
        regroup_request(&ab(), &token(EVE)),
        403,
        "may not form temporary groups",
    );
    // Alice may regroup A but not B.
    check(
        regroup_request(&ab(), &token(ALICE)),
        403,
        &format!("may not regroup {GROUP_B}"),
    );
    check(
        regroup_request(
            &[GROUP_A.into(), "sip:nowhere@mcx.test".into()],
            &token(DISPATCHER),
        ),
        404,
        "no such group: sip:nowhere@mcx.test",
    );
    check(
        regroup_request(&[], &token(DISPATCHER)),
        400,
        "no constituent groups",
    );
    check(
        regroup_request(&[GROUP_A.into(), GROUP_A.into()], &token(DISPATCHER)),
        400,
        GROUP_A,
    );
    let mut garbage = regroup_request(&ab(), &token(DISPATCHER));
    garbage.body = b"<not-a-list".to_vec();
    check(garbage, 400, "invalid list of constituent groups");
    let mut get = regroup_request(&ab(), &token(DISPATCHER));
    get.method = "GET".into();
    check(get, 405, "use POST");
    assert!(gms.temporary_groups(UNIX0).is_empty());
}

#[test]
fn without_regroup_configuration_nobody_regroups() {
    let mut w = World::new(3);
    let mut gms = w.open(None, default_config(), UNIX0);
    let r = refused(
        &mut gms,
        &mut w,
        &regroup_request(&ab(), &token(DISPATCHER)),
        UNIX0,
    );
    assert_eq!(r.status, 403, "{}", body_text(&r));
    // The read-only resources still answer through handle_request.
    let r = refused(
        &mut gms,
        &mut w,
        &mcx_gms::client::group_document_request(GROUP_A, &token(ALICE)),
        UNIX0,
    );
    assert_eq!(r.status, 200, "{}", body_text(&r));
}

#[test]
fn a_group_the_controlling_server_did_not_take_is_not_formed() {
    let mut w = World::new(4);
    let mut gms = gms(&mut w);
    let f = formation(&mut gms, &mut w, DISPATCHER, &ab(), UNIX0);
    let r = gms.complete_formation(f, Err("connection refused".into()));
    assert_eq!(r.status, 502, "{}", body_text(&r));
    assert!(body_text(&r).contains("connection refused"));
    assert!(gms.temporary_groups(UNIX0).is_empty());
    assert!(matches!(
        parse_regroup_response(&r),
        Err(GmsError::Status { status: 502, .. })
    ));
}

#[test]
fn only_its_former_dissolves_a_temporary_group() {
    let mut w = World::new(5);
    let mut gms = gms(&mut w);
    let id = form(&mut gms, &mut w, DISPATCHER, &ab(), UNIX0);
    let r = refused(
        &mut gms,
        &mut w,
        &dissolve_request(&id, &token(ALICE)),
        UNIX0,
    );
    assert_eq!(r.status, 403, "{}", body_text(&r));
    let r = refused(
        &mut gms,
        &mut w,
        &dissolve_request(GROUP_A, &token(DISPATCHER)),
        UNIX0,
    );
    assert_eq!(r.status, 405, "configured groups stay: {}", body_text(&r));

    let d = dissolution(&mut gms, &mut w, DISPATCHER, &id);
    assert_eq!(d.group_id, id);
    assert_eq!(
        parse_notice(&dissolved_notice(&id, "gms-token")).unwrap(),
        Notice::Dissolved { id: id.clone() }
    );
    // Not delivered: the group is kept, and the dissolution can be asked again.
    let r = gms.complete_dissolution(d, Err("timed out".into()));
    assert_eq!(r.status, 502);
    assert_eq!(gms.temporary_groups(UNIX0).len(), 1);
    let d = dissolution(&mut gms, &mut w, DISPATCHER, &id);
    assert_eq!(gms.complete_dissolution(d, Ok(())).status, 200);
    assert!(gms.temporary_groups(UNIX0).is_empty());
    let r = refused(
        &mut gms,
        &mut w,
        &dissolve_request(&id, &token(DISPATCHER)),
        UNIX0,
    );
    assert_eq!(r.status, 404, "{}", body_text(&r));
}

#[test]
fn a_temporary_group_ends_at_its_lifetime() {
    let mut w = World::new(6);
    let mut gms = gms(&mut w);
    let id = form(&mut gms, &mut w, DISPATCHER, &ab(), UNIX0);
    assert_eq!(gms.temporary_groups(UNIX0 + LIFETIME - 1).len(), 1);
    assert!(gms.temporary_groups(UNIX0 + LIFETIME).is_empty());
    let r = refused(
        &mut gms,
        &mut w,
        &dissolve_request(&id, &token(DISPATCHER)),
        UNIX0 + LIFETIME,
    );
    assert_eq!(r.status, 404, "forgotten: {}", body_text(&r));
}

#[test]
fn regroup_configuration_is_checked() {
    let mut w = World::new(7);
    let mut gms = w.open(None, default_config(), UNIX0);
    let mut bad = rights();
    bad.max_lifetime_secs = 0;
    assert!(
        matches!(gms.set_regroup(bad), Err(GmsError::Config(m)) if m.contains("max_lifetime_secs"))
    );
    let mut bad = rights();
    bad.rights[0].user = "sip:nobody@mcx.test".into();
    assert!(
        matches!(gms.set_regroup(bad), Err(GmsError::Config(m)) if m.contains("sip:nobody@mcx.test"))
    );
    let mut bad = rights();
    bad.rights[1].groups.push("sip:group-z@mcx.test".into());
    assert!(
        matches!(gms.set_regroup(bad), Err(GmsError::Config(m)) if m.contains("sip:group-z@mcx.test"))
    );
}

#[test]
fn malformed_notices_are_refused() {
    let mut put = formed_notice(
        &mcx_gms::regroup::TemporaryGroup {
            id: "sip:regroup-1@mcx.test".into(),
            constituents: ab(),
            formed_by: DISPATCHER.into(),
            expires_unix: UNIX0,
        },
        "t",
    );
    put.headers
        .retain(|(n, _)| n != mcx_gms::regroup::EXPIRES_HEADER);
    assert_eq!(parse_notice(&put).unwrap_err().status, 400);
    let mut other = put.clone();
    other.path = "/temporary-groups/sip%3Aother%40mcx.test".into();
    assert_eq!(parse_notice(&other).unwrap_err().status, 400);
    let mut post = put.clone();
    post.method = "POST".into();
    post.headers
        .push((mcx_gms::regroup::EXPIRES_HEADER.into(), "1".into()));
    assert_eq!(parse_notice(&post).unwrap_err().status, 405);
    let mut elsewhere = put;
    elsewhere.path = "/calls".into();
    assert_eq!(parse_notice(&elsewhere).unwrap_err().status, 404);
}
