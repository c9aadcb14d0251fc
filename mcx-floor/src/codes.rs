//! Code tables of TS 24.380 as newtypes with named constants whose Display
//! is the specification's text (the quinn-proto `errors!` shape).

use core::fmt;

/// Declares a newtype over a 16-bit code with named constants whose
/// Display is the specification's sentence; unknown values print as
/// `Name(value)`.
macro_rules! codes {
    (
        $(#[$meta:meta])*
        $name:ident { $( $(#[$cmeta:meta])* $konst:ident = $val:literal => $desc:literal; )* }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub struct $name(pub u16);

        impl $name {
            $( $(#[$cmeta])* pub const $konst: Self = Self($val); )*

            /// The specification's text for this code, if this crate knows it.
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
                    Some(d) => f.write_str(d),
                    None => write!(f, "{}({})", stringify!($name), self.0),
                }
            }
        }
    };
}

codes! {
    /// Reject cause of a Floor Deny message (TS 24.380 8.2.3.4, Reject
    /// Cause field, causes for Floor Deny). Only the causes this crate is
    /// sure of are named; other values are kept as they are.
    RejectCause {
        /// Cause #1.
        ANOTHER_USER_HAS_PERMISSION = 1 => "another MCPTT client has permission";
        /// Cause #2.
        INTERNAL_ERROR = 2 => "internal floor control server error";
        /// Cause #3.
        ONLY_ONE_PARTICIPANT = 3 => "only one participant";
        /// Cause #4.
        RETRY_AFTER_NOT_EXPIRED = 4 => "retry-after timer has not expired";
        /// Cause #5: the participant may only receive (a broadcast group
        /// call's receivers, TS 24.380 6.3.5; SPEC.md section 7).
        RECEIVE_ONLY = 5 => "receive only";
        /// Cause #6.
        NO_RESOURCES = 6 => "no resources available";
        /// Cause #7.
        QUEUE_FULL = 7 => "queue full";
        /// Cause #255.
        OTHER = 255 => "other reason";
    }
}

codes! {
    /// Reject cause of a Floor Revoke message (TS 24.380 8.2.3.4, causes
    /// for Floor Revoke; the numbers overlap the Floor Deny table with
    /// other meanings).
    RevokeCause {
        /// Cause #1.
        ONLY_ONE_CLIENT = 1 => "only one MCPTT client";
        /// Cause #2.
        MEDIA_BURST_TOO_LONG = 2 => "media burst too long";
        /// Cause #3.
        NO_PERMISSION_TO_SEND = 3 => "no permission to send a media burst";
        /// Cause #4.
        MEDIA_BURST_PREEMPTED = 4 => "media burst pre-empted";
        /// Cause #6.
        NO_RESOURCES = 6 => "no resources available";
        /// Cause #255.
        OTHER = 255 => "other reason";
    }
}

codes! {
    /// Value of the Source field (TS 24.380 8.2.3.11): which entity sent
    /// the message.
    Source {
        /// The floor participant.
        FLOOR_PARTICIPANT = 0 => "floor participant";
        /// The participating MCPTT function.
        PARTICIPATING = 1 => "participating MCPTT function";
        /// The controlling MCPTT function.
        CONTROLLING = 2 => "controlling MCPTT function";
        /// A non-controlling MCPTT function.
        NON_CONTROLLING = 3 => "non-controlling MCPTT function";
    }
}

/// The Floor Indicator field (TS 24.380 8.2.3.15): a 16-bit bit field.
/// Bits this crate does not name are kept as they are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct FloorIndicator(pub u16);

impl FloorIndicator {
    /// A: normal call.
    pub const NORMAL_CALL: Self = Self(0x8000);
    /// B: broadcast group call (SPEC.md section 7).
    pub const BROADCAST_GROUP_CALL: Self = Self(0x4000);
    /// C: system call.
    pub const SYSTEM_CALL: Self = Self(0x2000);
    /// D: emergency call.
    pub const EMERGENCY_CALL: Self = Self(0x1000);
    /// E: imminent peril call.
    pub const IMMINENT_PERIL_CALL: Self = Self(0x0800);
    /// F: queueing supported.
    pub const QUEUEING_SUPPORTED: Self = Self(0x0400);
    /// G: dual floor.
    pub const DUAL_FLOOR: Self = Self(0x0200);
    /// H: temporary group call (SPEC.md section 7).
    pub const TEMPORARY_GROUP_CALL: Self = Self(0x0100);

    /// Whether every bit of `other` is set in `self`.
    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
}

impl core::ops::BitOr for FloorIndicator {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_the_spec_text() {
        assert_eq!(RejectCause::RECEIVE_ONLY.to_string(), "receive only");
        assert_eq!(RejectCause(5), RejectCause::RECEIVE_ONLY);
        assert_eq!(RejectCause(77).to_string(), "RejectCause(77)");
        assert_eq!(RevokeCause(2).to_string(), "media burst too long");
        assert_eq!(
            Source::CONTROLLING.to_string(),
            "controlling MCPTT function"
        );
    }

    #[test]
    fn floor_indicator_bits() {
        let f = FloorIndicator::BROADCAST_GROUP_CALL | FloorIndicator::TEMPORARY_GROUP_CALL;
        assert_eq!(f.0, 0x4100);
        assert!(f.contains(FloorIndicator::BROADCAST_GROUP_CALL));
        assert!(!f.contains(FloorIndicator::NORMAL_CALL));
    }
}
