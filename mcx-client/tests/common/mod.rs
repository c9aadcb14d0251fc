//! A KMS and a GMS as the provisioning tests set them up: Alice in one
//! group, the GMS provisioned from the KMS.
#![allow(dead_code, clippy::unwrap_used)]

use mcx_gms::{Gms, GmsConfig, GmsUser, GroupConfig};
use mcx_ibc::kms::{CommunityPublic, UserKeys};
use mcx_kms::{Kms, KmsConfig, KmsUser};

pub(crate) const KMS_URI: &str = "kms.test.example";
pub(crate) const GMS_URI: &str = "sip:gms@test.example";
pub(crate) const GROUP: &str = "sip:group@test.example";
pub(crate) const ALICE: &str = "sip:alice@test.example";

/// A KMS (30-day key periods) for `users` as (URI, token).
pub(crate) fn kms(users: &[(&str, &str)]) -> Kms {
    Kms::open(
        None,
        None,
        KmsConfig {
            kms_uri: KMS_URI.into(),
            key_period_len: 30 * 86_400,
            key_period_offset: 0,
            users: users
                .iter()
                .map(|(uri, token)| KmsUser {
                    uri: (*uri).into(),
                    token: (*token).into(),
                    security: None,
                })
                .collect(),
        },
        &mut mcx_net::os_rng(),
    )
    .unwrap()
}

/// A GMS with its keys from the KMS, serving [`GROUP`] with Alice in it.
pub(crate) fn gms(community: CommunityPublic, keys: UserKeys) -> Gms {
    Gms::open(
        None,
        None,
        GmsConfig {
            gms_uri: GMS_URI.into(),
            groups: vec![GroupConfig {
                id: GROUP.into(),
                display_name: "G".into(),
                members: vec![ALICE.into()],
            }],
            users: vec![GmsUser {
                uri: ALICE.into(),
                token: "alice-token".into(),
            }],
            gmk_lifetime_secs: 86_400,
        },
        community,
        keys,
        mcx_net::now().unix,
        &mut mcx_net::os_rng(),
    )
    .unwrap()
}
