//! Reading a token's header before trusting anything in it.
//!
//! jsonwebtoken's own header type fails to parse on `"alg": "none"` (and any
//! algorithm it does not know), which would make such tokens look merely
//! malformed. We read `alg` and `kid` ourselves so that they are reported as
//! `algorithm_not_allowed`, the refusal an operator should see.

use serde::Deserialize;

use super::TokenError;

/// The header fields that pick the key. Everything else is ignored; in
/// particular an embedded `jwk`, `jku` or `x5u` never supplies a key.
#[derive(Debug, Deserialize)]
pub(crate) struct JoseHeader {
    pub alg: String,
    #[serde(default)]
    pub kid: Option<String>,
    /// RFC 7515: extensions listed here must be understood or the token
    /// refused. We understand none.
    #[serde(default)]
    pub crit: Option<serde_json::Value>,
}

impl JoseHeader {
    /// Parses the first of a compact JWS's three parts.
    pub fn parse(token: &str) -> Result<JoseHeader, TokenError> {
        let mut parts = token.split('.');
        let (Some(header), Some(_claims), Some(_signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let json = decode_base64url(header).ok_or(TokenError::Malformed)?;
        let parsed: JoseHeader =
            serde_json::from_slice(&json).map_err(|_| TokenError::Malformed)?;
        if parsed.crit.is_some() {
            return Err(TokenError::Malformed);
        }
        Ok(parsed)
    }
}

/// Who a token says it is for (`sub`) and its `groups`, read WITHOUT checking the
/// signature: for clients choosing their client id and topics, never for authorization.
pub fn unverified_subject(token: &str) -> Option<(String, Vec<String>)> {
    #[derive(Deserialize)]
    struct Subject {
        sub: String,
        #[serde(default)]
        groups: Vec<String>,
    }
    let claims = token.trim().split('.').nth(1)?;
    let json = decode_base64url(claims.trim_end_matches('='))?;
    let subject: Subject = serde_json::from_slice(&json).ok()?;
    Some((subject.sub, subject.groups))
}

/// Decodes unpadded base64url (RFC 4648 section 5), the JWS encoding.
///
/// Small enough to keep here rather than take a dependency for one call.
pub(crate) fn decode_base64url(input: &str) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        } as u32)
    }

    let bytes = input.as_bytes();
    // One leftover character carries only 6 bits: never a valid encoding.
    if bytes.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= value(c)? << (18 - 6 * i);
        }
        let [_, b0, b1, b2] = acc.to_be_bytes();
        out.extend_from_slice(&[b0, b1, b2][..chunk.len() - 1]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_round_trips() {
        assert_eq!(decode_base64url("").unwrap(), b"");
        assert_eq!(decode_base64url("Zg").unwrap(), b"f");
        assert_eq!(decode_base64url("Zm8").unwrap(), b"fo");
        assert_eq!(decode_base64url("Zm9v").unwrap(), b"foo");
        assert_eq!(decode_base64url("Zm9vYg").unwrap(), b"foob");
        assert_eq!(decode_base64url("-_-_").unwrap(), [0xfb, 0xff, 0xbf]);
        assert_eq!(
            decode_base64url("eyJhbGciOiJIUzI1NiJ9").unwrap(),
            br#"{"alg":"HS256"}"#
        );
    }

    #[test]
    fn base64url_rejects_other_alphabets_and_padding() {
        for bad in ["Zm9v=", "Zg==", "+/+/", "Z", "Zm9vY", "a b", "Zm9v\n"] {
            assert_eq!(decode_base64url(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn header_needs_three_parts_and_json() {
        assert!(matches!(JoseHeader::parse(""), Err(TokenError::Malformed)));
        assert!(matches!(
            JoseHeader::parse("eyJhbGciOiJIUzI1NiJ9.e30"),
            Err(TokenError::Malformed)
        ));
        assert!(matches!(
            JoseHeader::parse("eyJhbGciOiJIUzI1NiJ9.e30.x.y"),
            Err(TokenError::Malformed)
        ));
        assert!(matches!(
            JoseHeader::parse("bm90IGpzb24.e30.x"),
            Err(TokenError::Malformed)
        ));
        let h = JoseHeader::parse("eyJhbGciOiJIUzI1NiJ9.e30.x").unwrap();
        assert_eq!(h.alg, "HS256");
        assert_eq!(h.kid, None);
    }
}
