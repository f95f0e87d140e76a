//! The join token a technician hands to an agent installer: a single-use secret, the port
//! of the collector's enrollment listener, and the fingerprint of the collector's CA, so the
//! agent can recognise the real collector at its very first contact.
//!
//! Text form: `vgl1.<secret>.<port>.<fingerprint>`, secret and fingerprint in unpadded
//! base64url. The collector stores only a hash of the secret.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use std::fmt;
use std::str::FromStr;

const PREFIX: &str = "vgl1";

/// A parsed join token.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken {
    pub secret: [u8; 20],
    pub enroll_port: u16,
    /// SHA-256 of the CA certificate (DER).
    pub ca_fingerprint: [u8; 32],
}

impl fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The secret never reaches a log.
        f.debug_struct("JoinToken")
            .field("enroll_port", &self.enroll_port)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{PREFIX}.{}.{}.{}",
            URL_SAFE_NO_PAD.encode(self.secret),
            self.enroll_port,
            URL_SAFE_NO_PAD.encode(self.ca_fingerprint)
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenParseError {
    #[error("join token is not in the form vgl1.<secret>.<port>.<fingerprint>; copy the whole token printed by 'vigil-collector token create'")]
    Shape,
    #[error("join token {part} is damaged; copy the whole token printed by 'vigil-collector token create'")]
    Damaged { part: &'static str },
}

impl FromStr for JoinToken {
    type Err = TokenParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut parts = text.trim().split('.');
        let (Some(PREFIX), Some(secret), Some(port), Some(fingerprint), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(TokenParseError::Shape);
        };
        Ok(Self {
            secret: decode_fixed(secret, "secret")?,
            enroll_port: port
                .parse()
                .ok()
                .filter(|port| *port != 0)
                .ok_or(TokenParseError::Damaged { part: "port" })?,
            ca_fingerprint: decode_fixed(fingerprint, "CA fingerprint")?,
        })
    }
}

fn decode_fixed<const N: usize>(
    text: &str,
    part: &'static str,
) -> Result<[u8; N], TokenParseError> {
    URL_SAFE_NO_PAD
        .decode(text)
        .ok()
        .and_then(|bytes| <[u8; N]>::try_from(bytes).ok())
        .ok_or(TokenParseError::Damaged { part })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> JoinToken {
        JoinToken {
            secret: [7; 20],
            enroll_port: 7444,
            ca_fingerprint: [0xab; 32],
        }
    }

    #[test]
    fn a_token_round_trips_through_its_text_form() {
        let text = token().to_string();
        assert!(text.starts_with("vgl1."));
        assert_eq!(text.parse::<JoinToken>().unwrap(), token());
        assert_eq!(format!("  {text}\n").parse::<JoinToken>().unwrap(), token());
    }

    #[test]
    fn damaged_tokens_say_which_part() {
        let text = token().to_string();
        let truncated = &text[..text.len() - 3];
        assert_eq!(
            truncated.parse::<JoinToken>(),
            Err(TokenParseError::Damaged {
                part: "CA fingerprint"
            })
        );
        assert_eq!("vgl1.x".parse::<JoinToken>(), Err(TokenParseError::Shape));
        let bad_port = text.replace(".7444.", ".0.");
        assert_eq!(
            bad_port.parse::<JoinToken>(),
            Err(TokenParseError::Damaged { part: "port" })
        );
    }

    #[test]
    fn the_secret_is_not_in_debug_output() {
        assert!(!format!("{:?}", token()).contains("secret"));
    }
}
