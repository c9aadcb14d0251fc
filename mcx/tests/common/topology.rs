//! The default topology (`mcx/topologies/default.toml`, the one `mcx demo`
//! runs) placed for one process per role: `mcx run` needs every address
//! with a fixed port, so each address a role listens on is replaced.

use std::net::SocketAddr;
use std::path::Path;

use toml::{Table, Value};

/// What a role listens for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Listen {
    Http,
    Sip,
    Floor,
}

const DEFAULT: &str = include_str!("../../topologies/default.toml");

/// The default topology, as a table a test can change before writing it.
pub(crate) fn default() -> Table {
    DEFAULT.parse().expect("the default topology parses")
}

/// Writes a store key file into `dir` (once) and returns its path: the
/// operator key the lab's KMS and GMS seal their secrets under.
pub(crate) fn store_key_file(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("store.key");
    if !path.exists() {
        std::fs::write(&path, format!("{}\n", "5a".repeat(32))).expect("store key file written");
    }
    path
}

/// Sets each listen address of `t` to `place(role, what)` (role: `idms`,
/// `kms`, `gms`, `controlling`, or the URI of an MC server or a user),
/// keeps the KMS's and GMS's state in SQLite files in `db`, and gives the
/// IdMS a signing key every process trusts.
pub(crate) fn place(t: &mut Table, db: &Path, place: impl Fn(&str, Listen) -> SocketAddr) {
    let addr = |role: &str, what| Value::String(place(role, what).to_string());
    if let Some(idms) = t.get_mut("idms").and_then(Value::as_table_mut) {
        idms.insert("http".into(), addr("idms", Listen::Http));
        // A test key: the roles run as separate processes.
        idms.insert("signing_key".into(), Value::String("5a".repeat(32)));
    }
    for (role, what) in [("kms", Listen::Http), ("gms", Listen::Http)] {
        let node = t[role].as_table_mut().expect("[kms] and [gms]");
        node.insert("http".into(), addr(role, what));
        node.insert(
            "database".into(),
            Value::String(db.join(format!("{role}.sqlite")).display().to_string()),
        );
        node.insert(
            "store_key_file".into(),
            Value::String(store_key_file(db).display().to_string()),
        );
    }
    let c = t["controlling"].as_table_mut().expect("[controlling]");
    c.insert("sip".into(), addr("controlling", Listen::Sip));
    c.insert("floor".into(), addr("controlling", Listen::Floor));
    for (list, floor) in [("mc_server", false), ("user", true)] {
        for node in t[list].as_array_mut().expect("lists").iter_mut() {
            let node = node.as_table_mut().expect("tables");
            let uri = node["uri"].as_str().expect("uri").to_owned();
            node.insert("sip".into(), addr(&uri, Listen::Sip));
            if floor {
                node.insert("floor".into(), addr(&uri, Listen::Floor));
            }
        }
    }
}

/// The `key` of every `[[list]]` entry (`uri` of `user`, `id` of `group`).
pub(crate) fn each(t: &Table, list: &str, key: &str) -> Vec<String> {
    t[list]
        .as_array()
        .expect("a list")
        .iter()
        .map(|e| e[key].as_str().expect("a string").to_owned())
        .collect()
}

/// The members of a group, without the call's initiator.
pub(crate) fn members(t: &Table, group: &str) -> Vec<String> {
    let initiator = t["call"]["initiator"].as_str().expect("[call] initiator");
    let g = t["group"]
        .as_array()
        .expect("groups")
        .iter()
        .find(|g| g["id"].as_str() == Some(group))
        .expect("the group");
    g["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter_map(Value::as_str)
        .filter(|m| *m != initiator)
        .map(str::to_owned)
        .collect()
}
