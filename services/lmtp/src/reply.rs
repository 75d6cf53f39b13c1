//! Replies: a three-digit code (RFC 5321 §4.2), an enhanced status code (RFC 3463, advertised
//! as ENHANCEDSTATUSCODES, RFC 2034) and text.

use crate::proto::CommandError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub enhanced: &'static str,
    pub text: String,
}

impl Reply {
    pub fn new(code: u16, enhanced: &'static str, text: impl Into<String>) -> Reply {
        Reply {
            code,
            enhanced,
            text: text.into(),
        }
    }

    /// Writes the reply as one line.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(
            format!("{} {} {}\r\n", self.code, self.enhanced, self.text).as_bytes(),
        );
    }

    /// `451 4.3.0`: the stores cannot take the message now; the MTA keeps it and retries.
    pub fn temporary_failure(text: impl Into<String>) -> Reply {
        Reply::new(451, "4.3.0", text)
    }

    /// `550 5.1.1`: no such mailbox (RFC 3463 "bad destination mailbox address").
    pub fn unknown_user() -> Reply {
        Reply::new(550, "5.1.1", "No such user here")
    }

    /// `503 5.5.1`: a command out of sequence.
    pub fn bad_sequence(text: impl Into<String>) -> Reply {
        Reply::new(503, "5.5.1", text)
    }

    /// `552 5.3.4`: the message exceeds the size limit (RFC 1870 §6.1).
    pub fn too_big() -> Reply {
        Reply::new(552, "5.3.4", "Message size exceeds the fixed limit")
    }

    /// `421 4.3.2`: the server is shutting down (RFC 5321 §3.8); the client retries elsewhere.
    pub fn shutting_down() -> Reply {
        Reply::new(421, "4.3.2", "Service shutting down, closing connection")
    }
}

impl From<&CommandError> for Reply {
    fn from(e: &CommandError) -> Reply {
        match e {
            CommandError::Unrecognized => Reply::new(500, "5.5.1", "Command unrecognized"),
            CommandError::Syntax(why) => Reply::new(501, "5.5.4", format!("Syntax error: {why}")),
            CommandError::BadAddress { sender, reason } => Reply::new(
                501,
                if *sender { "5.1.7" } else { "5.1.3" },
                format!("Bad address syntax: {reason}"),
            ),
            CommandError::UnsupportedParameter(p) => {
                Reply::new(555, "5.5.4", format!("Parameter {p} not supported"))
            }
            CommandError::LineTooLong => Reply::new(500, "5.5.2", "Line too long"),
        }
    }
}
