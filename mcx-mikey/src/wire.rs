//! Code tables of MIKEY (RFC 3830, 4563, 4771, 6043, 6509, 7714) and the
//! TS 33.180 profile. Every table is an enum with `Unknown(u8)` that
//! round-trips: `u8::from(T::from(x)) == x` for every octet `x`.

use core::fmt;

/// Declares a wire enum: variants with their value and the spec's name.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        $name:ident {
            $( $(#[$vmeta:meta])* $var:ident = $val:literal => $desc:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum $name {
            $( $(#[$vmeta])* $var, )*
            /// A value this table does not name.
            Unknown(u8),
        }

        impl From<u8> for $name {
            fn from(v: u8) -> Self {
                match v {
                    $( $val => Self::$var, )*
                    other => Self::Unknown(other),
                }
            }
        }

        impl From<$name> for u8 {
            fn from(v: $name) -> u8 {
                match v {
                    $( $name::$var => $val, )*
                    $name::Unknown(other) => other,
                }
            }
        }

        impl $name {
            /// The name the specification gives this value, if known.
            pub fn name(self) -> Option<&'static str> {
                match self {
                    $( Self::$var => Some($desc), )*
                    Self::Unknown(_) => None,
                }
            }

            /// The wire value.
            pub fn value(self) -> u8 {
                u8::from(self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.name() {
                    Some(n) => write!(f, "{} ({})", self.value(), n),
                    None => write!(f, "{} (unknown)", self.value()),
                }
            }
        }
    };
}

wire_enum! {
    /// HDR data type (RFC 3830 6.1, RFC 6509 4.1).
    DataType {
        /// Pre-shared key message (RFC 3830).
        PreShared = 0 => "Pre-shared",
        /// Verification message of a pre-shared key exchange.
        PskVerify = 1 => "PSK ver msg",
        /// Public-key message.
        PublicKey = 2 => "Public key",
        /// Verification message of a public-key exchange.
        PkVerify = 3 => "PK ver msg",
        /// Diffie-Hellman initiator message.
        DhInit = 4 => "D-H init",
        /// Diffie-Hellman responder message.
        DhResp = 5 => "D-H resp",
        /// Error message.
        Error = 6 => "Error",
        /// DHHMAC initiator message (RFC 4650).
        DhHmacInit = 7 => "DHHMAC init",
        /// DHHMAC responder message (RFC 4650).
        DhHmacResp = 8 => "DHHMAC resp",
        /// RSA-R initiator message (RFC 4738).
        RsaRInit = 9 => "RSA-R I_MSG",
        /// RSA-R responder message (RFC 4738).
        RsaRResp = 10 => "RSA-R R_MSG",
        /// MIKEY-SAKKE I_MESSAGE (RFC 6509).
        Sakke = 26 => "SAKKE msg",
    }
}

wire_enum! {
    /// Next-payload values (RFC 3830 6.1, RFC 6043 6.6, RFC 6509 4.2).
    PayloadType {
        /// No further payload.
        Last = 0 => "Last payload",
        /// Key data transport.
        Kemac = 1 => "KEMAC",
        /// Envelope data.
        Pke = 2 => "PKE",
        /// Diffie-Hellman data.
        Dh = 3 => "DH",
        /// Signature.
        Sign = 4 => "SIGN",
        /// Time stamp.
        T = 5 => "T",
        /// Identity (RFC 3830).
        Id = 6 => "ID",
        /// Certificate.
        Cert = 7 => "CERT",
        /// Certificate hash.
        Chash = 8 => "CHASH",
        /// Verification message.
        V = 9 => "V",
        /// Security policy.
        Sp = 10 => "SP",
        /// Random value.
        Rand = 11 => "RAND",
        /// Error.
        Err = 12 => "ERR",
        /// Identity with role (RFC 6043).
        Idr = 14 => "IDR",
        /// Key data sub-payload (inside KEMAC).
        KeyData = 20 => "Key data",
        /// General extension.
        GeneralExt = 21 => "General Ext.",
        /// SAKKE encapsulated data (RFC 6509).
        Sakke = 26 => "SAKKE",
    }
}

wire_enum! {
    /// HDR PRF function (RFC 3830 6.1, RFC 6043 6.1).
    PrfFunc {
        /// MIKEY-1 (HMAC-SHA-1 P function).
        Mikey1 = 0 => "MIKEY-1",
        /// PRF-HMAC-SHA-256 (RFC 6043).
        HmacSha256 = 1 => "PRF-HMAC-SHA-256",
    }
}

wire_enum! {
    /// HDR CS ID map type (RFC 3830 6.1, RFC 4563, RFC 6043 6.1.1).
    MapType {
        /// SRTP-ID map.
        SrtpId = 0 => "SRTP-ID",
        /// Empty map (RFC 4563).
        Empty = 1 => "Empty map",
        /// GENERIC-ID map (RFC 6043).
        GenericId = 2 => "GENERIC-ID",
    }
}

wire_enum! {
    /// Security protocol of a crypto session / SP payload.
    ProtType {
        /// SRTP.
        Srtp = 0 => "SRTP",
    }
}

wire_enum! {
    /// Time stamp type (RFC 3830 6.6).
    TsType {
        /// NTP time in UTC, 64 bits.
        NtpUtc = 0 => "NTP-UTC",
        /// NTP time, 64 bits.
        Ntp = 1 => "NTP",
        /// Counter, 32 bits.
        Counter = 2 => "COUNTER",
    }
}

wire_enum! {
    /// IDR ID role (RFC 6043 6.6, RFC 6509 4.4, TS 33.180 E.2).
    IdRole {
        /// Initiator.
        Initiator = 1 => "IDRi",
        /// Responder.
        Responder = 2 => "IDRr",
        /// KMS.
        Kms = 3 => "IDRkms",
        /// Pre-shared key.
        Psk = 4 => "IDRpsk",
        /// Application.
        App = 5 => "IDRapp",
        /// Initiator's KMS (RFC 6509).
        InitiatorKms = 6 => "IDRkmsi",
        /// Responder's KMS (RFC 6509).
        ResponderKms = 7 => "IDRkmsr",
        /// Initiator's UID, identity hiding (TS 33.180).
        InitiatorUid = 8 => "IDRuidi",
        /// Responder's UID, identity hiding (TS 33.180).
        ResponderUid = 9 => "IDRuidr",
    }
}

wire_enum! {
    /// ID type (RFC 3830 6.7, RFC 6043 6.6).
    IdType {
        /// Network access identifier.
        Nai = 0 => "NAI",
        /// URI.
        Uri = 1 => "URI",
        /// Byte string.
        ByteString = 2 => "byte string",
    }
}

wire_enum! {
    /// KEMAC encryption algorithm (RFC 3830 6.2).
    EncrAlg {
        /// No encryption.
        Null = 0 => "NULL",
        /// AES in counter mode, 128-bit key.
        AesCm128 = 1 => "AES-CM-128",
        /// AES key wrap, 128-bit key.
        AesKw128 = 2 => "AES-KW-128",
    }
}

wire_enum! {
    /// KEMAC MAC algorithm (RFC 3830 6.2, RFC 6043 6.2).
    MacAlg {
        /// No MAC.
        Null = 0 => "NULL",
        /// HMAC-SHA-1, 160-bit MAC.
        HmacSha1_160 = 1 => "HMAC-SHA-1-160",
        /// HMAC-SHA-256, 256-bit MAC (RFC 6043).
        HmacSha256_256 = 2 => "HMAC-SHA-256-256",
    }
}

impl MacAlg {
    /// The MAC's length in octets, if the algorithm is known.
    pub fn mac_len(self) -> Option<usize> {
        match self {
            Self::Null => Some(0),
            Self::HmacSha1_160 => Some(20),
            Self::HmacSha256_256 => Some(32),
            Self::Unknown(_) => None,
        }
    }
}

wire_enum! {
    /// Key data sub-payload type (RFC 3830 6.13), the high nibble.
    KeyDataType {
        /// TEK generation key.
        Tgk = 0 => "TGK",
        /// TGK with salt.
        TgkSalt = 1 => "TGK+SALT",
        /// Traffic encryption key.
        Tek = 2 => "TEK",
        /// TEK with salt.
        TekSalt = 3 => "TEK+SALT",
    }
}

wire_enum! {
    /// Key validity type (RFC 3830 6.13), the low nibble.
    KvType {
        /// No validity.
        Null = 0 => "Null",
        /// SPI/MKI.
        Spi = 1 => "SPI/MKI",
        /// Interval.
        Interval = 2 => "Interval",
    }
}

wire_enum! {
    /// SIGN signature type (RFC 3830 6.5, RFC 6509 4.3), 4 bits.
    SignType {
        /// RSA PKCS#1 v1.5.
        RsaPkcs1 = 0 => "RSA/PKCS#1/1.5",
        /// RSA PSS.
        RsaPss = 1 => "RSA/PSS",
        /// ECCSI (RFC 6507).
        Eccsi = 2 => "ECCSI",
    }
}

wire_enum! {
    /// SAKKE parameter set (RFC 6509 4.2).
    SakkeParams {
        /// RFC 6509 parameter set 1.
        Set1 = 1 => "parameter set 1",
    }
}

wire_enum! {
    /// SAKKE identifier scheme (RFC 6509 4.2, TS 33.180 E.1).
    IdScheme {
        /// tel URI with monthly keys (RFC 6509).
        TelUriMonthly = 1 => "tel URI with monthly keys",
        /// 3GPP MCX hashed UID (TS 33.180 F.2.1).
        McxHashedUid = 2 => "3GPP MCX hashed UID",
    }
}

wire_enum! {
    /// General extension type (RFC 3830 6.15, TS 33.180 E.5, E.6).
    GeneralExtType {
        /// Vendor ID.
        VendorId = 0 => "Vendor ID",
        /// SDP IDs (RFC 4567).
        SdpIds = 1 => "SDP IDs",
        /// SAKKE-to-self (TS 33.180 E.5).
        SakkeToSelf = 6 => "SAKKE-to-self",
        /// 3GPP key parameters (TS 33.180 E.6).
        KeyParameters = 7 => "3GPP key parameters",
    }
}

wire_enum! {
    /// SRTP policy parameter type (RFC 3830 6.10.1, RFC 4771, RFC 7714,
    /// TS 33.180 Table E.2-1).
    SrtpParam {
        /// Encryption algorithm.
        EncrAlg = 0 => "Encryption algorithm",
        /// Session encryption key length.
        EncrKeyLen = 1 => "Session Encr. key length",
        /// Authentication algorithm.
        AuthAlg = 2 => "Authentication algorithm",
        /// Session authentication key length.
        AuthKeyLen = 3 => "Session Auth. key length",
        /// Session salt key length.
        SaltKeyLen = 4 => "Session Salt key length",
        /// SRTP PRF.
        Prf = 5 => "SRTP Pseudo Random Function",
        /// Key derivation rate.
        KeyDerivationRate = 6 => "Key derivation rate",
        /// SRTP encryption off/on.
        SrtpEncryption = 7 => "SRTP encryption off/on",
        /// SRTCP encryption off/on.
        SrtcpEncryption = 8 => "SRTCP encryption off/on",
        /// Sender's FEC order.
        FecOrder = 9 => "sender's FEC order",
        /// SRTP authentication off/on.
        SrtpAuthentication = 10 => "SRTP authentication off/on",
        /// Authentication tag length.
        AuthTagLen = 11 => "Authentication tag length",
        /// SRTP prefix length.
        PrefixLen = 12 => "SRTP prefix length",
        /// ROC transmission rate (RFC 4771).
        RocTransmissionRate = 13 => "ROC transmission rate",
        /// SRTP authentication tag length (TS 33.180: 4 octets for the ROC).
        SrtpAuthTagLen = 18 => "SRTP Authentication tag length",
        /// SRTCP authentication tag length.
        SrtcpAuthTagLen = 19 => "SRTCP Authentication tag length",
        /// AEAD authentication tag length (RFC 7714).
        AeadAuthTagLen = 20 => "AEAD authentication tag length",
    }
}

wire_enum! {
    /// Key purpose tag: the top 4 bits of a 32-bit key ID (TS 33.180 5.x),
    /// plus this project's provisional tag for the TGMK.
    Purpose {
        /// Group master key.
        Gmk = 0 => "GMK",
        /// Private call key.
        Pck = 1 => "PCK",
        /// Client-server key.
        Csk = 2 => "CSK",
        /// Signalling protection key.
        Spk = 3 => "SPK",
        /// MBMS key for floor control.
        Mkfc = 4 => "MKFC",
        /// MBMS subchannel control key.
        Mscck = 5 => "MSCCK",
        /// Multicast signalling key.
        Musik = 6 => "MuSiK",
        /// Temporary group master key (project decision, see docs/tgmk-wrap.md).
        Tgmk = 7 => "TGMK",
    }
}

/// Declares a newtype over a code with named constants whose Display is
/// the spec's sentence (the quinn-proto `errors!` shape).
macro_rules! codes {
    (
        $(#[$meta:meta])*
        $name:ident { $( $(#[$cmeta:meta])* $konst:ident = $val:literal => $desc:literal; )* }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub struct $name(pub u8);

        impl $name {
            $( $(#[$cmeta])* pub const $konst: Self = Self($val); )*

            /// The specification's description of this code, if known.
            pub fn description(self) -> Option<&'static str> {
                match self.0 {
                    $( $val => Some($desc), )*
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.description() {
                    Some(d) => write!(f, "{} ({})", self.0, d),
                    None => write!(f, "{}({})", stringify!($name), self.0),
                }
            }
        }
    };
}

codes! {
    /// ERR payload error number (RFC 3830 6.12).
    ErrorCode {
        /// Authentication failure.
        AUTH_FAILURE = 0 => "Authentication failure";
        /// Invalid timestamp.
        INVALID_TS = 1 => "Invalid timestamp";
        /// PRF function not supported.
        INVALID_PRF = 2 => "PRF function not supported";
        /// MAC algorithm not supported.
        INVALID_MAC = 3 => "MAC algorithm not supported";
        /// Encryption algorithm not supported.
        INVALID_EA = 4 => "Encryption algorithm not supported";
        /// Hash function not supported.
        INVALID_HA = 5 => "Hash function not supported";
        /// DH group not supported.
        INVALID_DH = 6 => "DH group not supported";
        /// ID not supported.
        INVALID_ID = 7 => "ID not supported";
        /// Certificate not supported.
        INVALID_CERT = 8 => "Certificate not supported";
        /// SP type not supported.
        INVALID_SP = 9 => "SP type not supported";
        /// SP parameters not supported.
        INVALID_SPPAR = 10 => "SP parameters not supported";
        /// Data type not supported.
        INVALID_DT = 11 => "Data type not supported";
        /// Unspecified error.
        UNSPECIFIED = 12 => "Unspecified error";
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_octet_round_trips() {
        for v in 0..=255u8 {
            assert_eq!(u8::from(DataType::from(v)), v);
            assert_eq!(u8::from(PayloadType::from(v)), v);
            assert_eq!(u8::from(IdRole::from(v)), v);
            assert_eq!(u8::from(SrtpParam::from(v)), v);
            assert_eq!(u8::from(GeneralExtType::from(v)), v);
            assert_eq!(u8::from(Purpose::from(v)), v);
            assert_eq!(u8::from(MacAlg::from(v)), v);
        }
        assert_eq!(DataType::from(26), DataType::Sakke);
        assert_eq!(DataType::from(27), DataType::Unknown(27));
        assert_eq!(IdRole::from(9).to_string(), "9 (IDRuidr)");
        assert_eq!(ErrorCode::INVALID_TS.to_string(), "1 (Invalid timestamp)");
        assert_eq!(ErrorCode(99).to_string(), "ErrorCode(99)");
    }
}
