//! `mcx mikey wrap-tgmk | gmk | csk`: build and sign key distribution
//! messages with the library the roles use, every random value optionally
//! given so that a lab can reproduce another implementation's vector.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use mcx_ibc::eccsi::{SigningKey, hazmat};
use mcx_ibc::kms::CommunityPublic;
use mcx_mikey::csk::{CskMessage, CskMessageRandom, csk_key_parameters, csk_srtcp_keys};
use mcx_mikey::gmk::{GmkMessage, GmkMessageRandom, gmk_key_parameters};
use mcx_mikey::kdf;
use mcx_mikey::message::{Payload, Sign, Sp};
use mcx_mikey::sakke_msg::{ECCSI_SIGNATURE_LEN, KeyMessageRandom};
use mcx_mikey::tgmk::{self, ConstituentGroup, TgmkWrap};
use mcx_mikey::wire::SignType;
use mcx_mikey::{Csk, Gmk, KeyId, Message, SrtpMasterKeys, Tgmk};
use serde::Serialize;
use zeroize::Zeroizing;

use super::{CskArgs, GmkArgs, SignerArgs, TransportArgs, WrapTgmkArgs, community_public};
use crate::cli::kdf::{gmk as key128, key_id};
use crate::error::CliError;
use crate::input;
use crate::keyfile::{KeyFile, PublicFile, UserKeysFile};
use crate::output;

/// Seconds a wrapped TGMK stays valid by default (a call's life).
const DEFAULT_TGMK_LIFETIME: u64 = 3600;

/// The signer of `--keys`, the time stamp, and the j to sign with.
struct Signer {
    key: SigningKey,
    /// The keys file's name, for messages.
    name: String,
    uri: Option<String>,
    public: PublicFile,
    t_unix: u64,
    ephemeral: Option<Zeroizing<Vec<u8>>>,
}

impl Signer {
    fn load(args: &SignerArgs) -> Result<Self, CliError> {
        let file = UserKeysFile::load(&args.keys)?;
        let key = file.signing_key()?;
        let public = file.public();
        let t_unix = match args.time {
            Some(t) => t,
            None => input::now_unix()?,
        };
        // The message's time stamp picks the key period of the signer's
        // UID (TS 33.180 F.2.1): keys of another period would not verify.
        let period =
            mcx_ibc::uid::key_period_no(t_unix, public.key_period, public.key_period_offset)
                .map_err(|e| CliError::value("--time", e))?;
        if period != file.key_period_no() {
            return Err(CliError::invalid(
                "--time",
                format!(
                    "falls in key period {period}, but {} holds keys for key period {}",
                    input::display_name(&args.keys),
                    file.key_period_no()
                ),
            ));
        }
        let ephemeral = args
            .ephemeral
            .as_deref()
            .map(|j| input::hex("--ephemeral", j).map(Zeroizing::new))
            .transpose()?;
        Ok(Self {
            key,
            name: input::display_name(&args.keys),
            uri: file.user_uri,
            public,
            t_unix,
            ephemeral,
        })
    }

    /// Writes the ECCSI signature of `bytes[..signed_len]` after it.
    fn sign(&self, bytes: &mut [u8], signed_len: Option<usize>) -> Result<(), CliError> {
        let signed_len =
            signed_len.ok_or_else(|| CliError::invalid("message", "no SIGN payload to fill"))?;
        let signed = bytes.get(..signed_len).unwrap_or_default();
        let sig = match &self.ephemeral {
            Some(j) => hazmat::sign_with_j(&self.key, signed, j)
                .map_err(|e| CliError::value("--ephemeral", e))?,
            None => self.key.sign(signed, &mut input::os_rng()?),
        };
        let out = bytes
            .get_mut(signed_len..)
            .filter(|o| o.len() == ECCSI_SIGNATURE_LEN)
            .ok_or_else(|| CliError::invalid("message", "SIGN payload of the wrong length"))?;
        out.copy_from_slice(&sig.to_bytes());
        Ok(())
    }

    /// Appends a SIGN payload to `msg`, encodes and signs it.
    fn sign_message(&self, mut msg: Message) -> Result<Vec<u8>, CliError> {
        msg.payloads.push(Payload::Sign(Sign {
            sign_type: SignType::Eccsi,
            signature: vec![0; ECCSI_SIGNATURE_LEN],
        }));
        let (mut bytes, layout) = msg
            .encode_with_layout()
            .map_err(|e| CliError::invalid("message", e.to_string()))?;
        self.sign(&mut bytes, layout.signed_len)?;
        Ok(bytes)
    }
}

/// 16 octets: given in hex, or from the OS RNG.
fn octets16(what: &str, given: Option<&str>) -> Result<[u8; 16], CliError> {
    match given {
        Some(text) => input::hex_array::<16>(what, text),
        None => {
            let mut out = [0u8; 16];
            rand_core::Rng::fill_bytes(&mut input::os_rng()?, &mut out);
            Ok(out)
        }
    }
}

/// The message as the output flags say: hex or base64.
fn encode(message: &[u8], hex: bool) -> String {
    if hex {
        hex::encode(message)
    } else {
        BASE64.encode(message)
    }
}

/// SRTP (or SRTCP) master keys as JSON.
#[derive(Debug, Serialize)]
struct MasterJson {
    master_key: String,
    master_salt: String,
    mki: String,
}

impl MasterJson {
    fn of(keys: &SrtpMasterKeys) -> Self {
        Self {
            master_key: hex::encode(keys.master_key()),
            master_salt: hex::encode(keys.master_salt()),
            mki: hex::encode(keys.mki()),
        }
    }
}

/// One wrapped copy in `wrap-tgmk --json`.
#[derive(Debug, Serialize)]
struct CopyJson {
    group: String,
    gmk_id: String,
    message: String,
}

/// `wrap-tgmk --json`.
#[derive(Debug, Serialize)]
struct WrapJson {
    temporary_group: String,
    tgmk: String,
    tgmk_id: String,
    rand: String,
    t: u64,
    srtp: MasterJson,
    copies: Vec<CopyJson>,
}

/// A `--group URI:GMK-ID:GMK`: the last two colon-separated fields are
/// the keys, so the URI keeps its own colons (`sip:...`).
fn parse_group(text: &str) -> Result<(String, KeyId, Gmk), CliError> {
    let mut fields = text.rsplitn(3, ':');
    let (Some(gmk), Some(id), Some(uri)) = (fields.next(), fields.next(), fields.next()) else {
        return Err(CliError::invalid("--group", "expected URI:GMK-ID:GMK"));
    };
    if uri.is_empty() {
        return Err(CliError::invalid("--group", "the group URI is empty"));
    }
    Ok((
        uri.to_owned(),
        key_id("--group GMK-ID", id)?,
        key128("--group GMK", gmk)?,
    ))
}

/// `mcx mikey wrap-tgmk`.
pub(super) fn wrap_tgmk(args: &WrapTgmkArgs) -> Result<(), CliError> {
    let signer = Signer::load(&args.signer)?;
    let kms = community_public(&signer.public)?;
    let groups = args
        .group
        .iter()
        .map(|g| parse_group(g))
        .collect::<Result<Vec<_>, _>>()?;
    if groups.len() > 1 && (signer.ephemeral.is_some() || args.iv.is_some()) {
        return Err(CliError::invalid(
            "--ephemeral/--iv",
            "given values sign or seal one copy: give one --group (a j used twice reveals the SSK)",
        ));
    }
    let (tgmk, tgmk_id) = match (&args.tgmk, &args.tgmk_id) {
        (Some(k), Some(id)) => (
            Tgmk::from_bytes(key128("--tgmk", k)?.as_bytes())
                .map_err(|e| CliError::invalid("--tgmk", e.to_string()))?,
            key_id("--tgmk-id", id)?,
        ),
        _ => tgmk::generate(&mut input::os_rng()?),
    };
    let rand = octets16("--rand", args.rand.as_deref())?;
    let t = signer.t_unix;
    let wrap = TgmkWrap {
        initiator_uri: signer_uri(&signer)?,
        kms: &kms,
        temporary_group_id: &args.temporary_group,
        tgmk: &tgmk,
        tgmk_id,
        activation: args.activation.unwrap_or(t),
        expiry: args
            .expiry
            .unwrap_or_else(|| t.saturating_add(DEFAULT_TGMK_LIFETIME)),
        t_unix: t,
        policy: Sp::default_group_profile(),
    };
    let mut copies = Vec::with_capacity(groups.len());
    for (uri, gmk_id, gmk) in &groups {
        let group = ConstituentGroup {
            group_id: uri,
            gmk,
            gmk_id: *gmk_id,
        };
        let iv = octets16("--iv", args.iv.as_deref())?;
        let (mut bytes, layout) = wrap
            .copy_unsigned(&group, &rand, iv)
            .map_err(|e| CliError::invalid("--tgmk-id", e.to_string()))?;
        signer.sign(&mut bytes, layout.signed_len)?;
        copies.push(CopyJson {
            group: uri.clone(),
            gmk_id: gmk_id.to_string(),
            message: encode(&bytes, args.signer.hex),
        });
    }
    if args.signer.json {
        return output::json(&WrapJson {
            temporary_group: args.temporary_group.clone(),
            tgmk: hex::encode(tgmk.as_bytes()),
            tgmk_id: tgmk_id.to_string(),
            rand: hex::encode(rand),
            t,
            srtp: MasterJson::of(&tgmk::srtp_keys(&tgmk, tgmk_id, &rand)),
            copies,
        });
    }
    let lines: Vec<String> = copies
        .iter()
        .map(|c| format!("{} {}", c.group, c.message))
        .collect();
    output::line(&lines.join("\n"))
}

/// The signer's URI: a raw-identifier keys file has none.
fn signer_uri(signer: &Signer) -> Result<&str, CliError> {
    signer.uri.as_deref().ok_or_else(|| {
        CliError::invalid(
            &signer.name,
            "no user_uri (keys for a raw identifier cannot sign a MIKEY message)",
        )
    })
}

/// The community for the receiver: `--community`, or the signer's.
fn transport_kms(signer: &Signer, args: &TransportArgs) -> Result<CommunityPublic, CliError> {
    match &args.community {
        Some(path) => community_public(&PublicFile::load(path)?),
        None => community_public(&signer.public),
    }
}

/// A GMK or CSK message in `--json`.
#[derive(Debug, Serialize)]
struct KeyMessageJson {
    message: String,
    t: u64,
    rand: String,
    iv: Option<String>,
    #[serde(flatten)]
    derived: Derived,
}

/// What a GMK or CSK message gives its receiver.
#[derive(Debug, Serialize)]
struct Derived {
    #[serde(skip_serializing_if = "Option::is_none")]
    guk_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    srtp: Option<MasterJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    srtcp: Option<MasterJson>,
}

/// The SP: the default group profile without the parameters omitted, or none.
fn policy(args: &TransportArgs) -> Option<Sp> {
    let mut sp = Sp::default_group_profile();
    sp.params
        .retain(|p| !args.omit_sp_param.contains(&p.param_type));
    (!args.no_sp).then_some(sp)
}

/// RAND and IV, given or random.
fn message_random(args: &TransportArgs) -> Result<GmkMessageRandom, CliError> {
    Ok(GmkMessageRandom {
        rand: octets16("--rand", args.rand.as_deref())?,
        iv: octets16("--iv", args.iv.as_deref())?,
    })
}

/// Prints a built GMK or CSK message as the output flags say.
fn print_key_message(
    signer: &Signer,
    out: &SignerArgs,
    args: &TransportArgs,
    random: &KeyMessageRandom,
    bytes: &[u8],
    derived: Derived,
) -> Result<(), CliError> {
    let message = encode(bytes, out.hex);
    if !out.json {
        return output::line(&message);
    }
    output::json(&KeyMessageJson {
        message,
        t: signer.t_unix,
        rand: hex::encode(random.rand),
        iv: (!args.no_key_params).then(|| hex::encode(random.iv)),
        derived,
    })
}

/// `mcx mikey gmk`.
pub(super) fn gmk(args: &GmkArgs) -> Result<(), CliError> {
    let signer = Signer::load(&args.signer)?;
    let kms = transport_kms(&signer, &args.transport)?;
    let gmk = key128("--gmk", &args.gmk)?;
    let gmk_id = key_id("--gmk-id", &args.gmk_id)?;
    let t = &args.transport;
    let key_params = (!t.no_key_params).then(|| {
        let mut kp =
            gmk_key_parameters(args.group.as_deref().unwrap_or(""), t.activation, t.expiry);
        if args.group.is_none() {
            kp.group_ids = Some(Vec::new());
        }
        kp
    });
    let random = message_random(t)?;
    let msg = GmkMessage {
        gms_uri: signer_uri(&signer)?,
        member_uri: &args.member,
        kms: &kms,
        gmk: &gmk,
        gmk_id,
        key_params,
        policy: policy(t),
        identity_hiding: t.identity_hiding,
        t_unix: signer.t_unix,
        key_params_date_time: t.date_time,
    }
    .unsigned(&random)
    .map_err(|e| CliError::invalid("GMK message", e.to_string()))?;
    let bytes = signer.sign_message(msg)?;
    let guk_id = kdf::guk_id(&gmk, gmk_id, &args.member);
    let srtp = kdf::gmk_srtp_keys(&gmk, gmk_id, guk_id, &random.rand);
    let derived = Derived {
        guk_id: Some(guk_id.to_string()),
        srtp: Some(MasterJson::of(&srtp)),
        srtcp: None,
    };
    print_key_message(&signer, &args.signer, t, &random, &bytes, derived)
}

/// `mcx mikey csk`.
pub(super) fn csk(args: &CskArgs) -> Result<(), CliError> {
    let signer = Signer::load(&args.signer)?;
    let kms = transport_kms(&signer, &args.transport)?;
    let csk = Csk::from_bytes(key128("--csk", &args.csk)?.as_bytes())
        .map_err(|e| CliError::invalid("--csk", e.to_string()))?;
    let csk_id = key_id("--csk-id", &args.csk_id)?;
    let t = &args.transport;
    let random: CskMessageRandom = message_random(t)?;
    let msg = CskMessage {
        client_uri: signer_uri(&signer)?,
        server_uri: &args.server,
        kms: &kms,
        csk: &csk,
        csk_id,
        key_params: (!t.no_key_params).then(|| csk_key_parameters(t.activation, t.expiry)),
        policy: policy(t),
        identity_hiding: t.identity_hiding,
        t_unix: signer.t_unix,
        key_params_date_time: t.date_time,
    }
    .unsigned(&random)
    .map_err(|e| CliError::invalid("CSK message", e.to_string()))?;
    let bytes = signer.sign_message(msg)?;
    let srtcp = csk_srtcp_keys(&csk, csk_id, &random.rand);
    let derived = Derived {
        guk_id: None,
        srtp: None,
        srtcp: Some(MasterJson::of(&srtcp)),
    };
    print_key_message(&signer, &args.signer, t, &random, &bytes, derived)
}
