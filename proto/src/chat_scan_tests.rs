//! The scan against the full parse: [`ChatMessage::check_within`] must give exactly what
//! [`ChatMessage::parse_within`] gives (its `Ok`, or its very error) for every payload. Checked
//! on hand-picked edge cases and on many generated payloads (shapes built from chat-like
//! fragments, then byte mutations of them), from a fixed seed so a failure reproduces.

use super::super::{ChatMessage, PayloadError};
use super::certainly_valid;

/// The one property: same verdict, same error.
fn same(payload: &[u8], limit: usize) -> Result<(), PayloadError> {
    let full = ChatMessage::parse_within(payload, limit).map(drop);
    let checked = ChatMessage::check_within(payload, limit);
    assert_eq!(
        checked,
        full,
        "check_within and parse_within differ on {:?}",
        String::from_utf8_lossy(payload)
    );
    // The fast path (which leaves the size bound to its caller) never accepts what the
    // full parse refuses.
    if certainly_valid(payload) && payload.len() <= limit {
        assert!(full.is_ok(), "{:?}", String::from_utf8_lossy(payload));
    }
    full
}

#[test]
fn edge_cases_agree() {
    let deep = |n: usize| {
        format!(
            r#"{{"id":"m","kind":"k","body":{}1{}}}"#,
            "[".repeat(n),
            "]".repeat(n)
        )
    };
    let cases: Vec<Vec<u8>> = [
        r#"{"id":"m1","kind":"text","body":"hi","reply_to":"m0","ts":1700000000000,"extra":1}"#,
        r#"{"id":"m1","kind":"image","body":{"url":"x","n":[1,2.5,-3,true,null]}}"#,
        r#"  {"id":"m","kind":"text","body":"x"}  "#,
        "\u{feff}{\"id\":\"m\",\"kind\":\"text\",\"body\":\"x\"}",
        r#"{"id":"m","kind":"text","body":"x"} x"#,
        r#"{"id":"m","kind":"text","body":"x"}{}"#,
        r#"{"id":"m","kind":"text","body":"x",}"#,
        r#"{"id":"m","kind":"text","body":"x""#,
        r#"{"id":"m","kind":"text","body":false}"#,
        r#"{"id":"m","kind":"text","body":[]}"#,
        r#"{"id":"m","kind":"text","body":{}}"#,
        r#"{"id":"m","kind":"text","body":null}"#,
        r#"{"id":"m","kind":"text","body":[null]}"#,
        r#"{"id":"m","kind":"text","body":{"a":null}}"#,
        r#"{"id":"m","kind":"text","body":"x","reply_to":null}"#,
        r#"{"id":"m","kind":"text","body":"x","reply_to":1}"#,
        r#"{"id":"m","kind":"text","body":"x","reply_to":""}"#,
        r#"{"id":"m","kind":"text","body":"x","ts":null}"#,
        r#"{"id":"m","kind":"text","body":"x","ts":-0}"#,
        r#"{"id":"m","kind":"text","body":"x","ts":0}"#,
        r#"{"id":"m","kind":"text","body":"x","ts":1.0}"#,
        r#"{"id":"m","kind":"text","body":"x","ts":1e3}"#,
        r#"{"id":"m","kind":"text","body":"x","ts":9223372036854775807}"#,
        r#"{"id":"m","kind":"text","body":"x","ts":9223372036854775808}"#,
        r#"{"id":"m","kind":"text","body":"x","ts":-9223372036854775808}"#,
        r#"{"id":"m","kind":"text","body":"x","ts":-9223372036854775809}"#,
        r#"{"id":"m","kind":"text","body":"x","ts":18446744073709551616}"#,
        r#"{"id":"m","kind":"text","body":1e400}"#,
        r#"{"id":"m","kind":"text","body":-1e400}"#,
        r#"{"id":"m","kind":"text","body":1e-400}"#,
        r#"{"id":"m","kind":"text","body":01}"#,
        r#"{"id":"m","kind":"text","body":NaN}"#,
        r#"{"id":"m","kind":"text","body":"x","id":""}"#,
        r#"{"id":"","kind":"text","body":"x","id":"m"}"#,
        r#"{"id":"m","kind":"text","body":null,"body":"x"}"#,
        r#"{"id":"m","kind":"text","body":"x","extra":"\u0000","extra":1}"#,
        r#"{"id":"m","kind":"text","body":"x","extra":1,"extra":"\u0000"}"#,
        r#"{"\u0069d":"m","kind":"text","body":"x"}"#,
        r#"{"id":"m","kind":"text","body":"x","i\u0000d":1}"#,
        r#"{"id":"m","kind":"text","body":"\\u0000"}"#,
        r#"{"id":"m","kind":"text","body":"\ud800"}"#,
        r#"{"id":"m","kind":"text","body":"\ud83d\ude00"}"#,
        r#"{"id":"m","kind":"text","body":"\u00"}"#,
        r#"{"id":"m","kind":"text","body":"\x"}"#,
        r#"{"id":"m","kind":"te\u0000xt","body":"x"}"#,
        r#"{"id":"m","kind":"te\u007fxt","body":"x"}"#,
        r#"{"id":"m","kind":"te\u0085xt","body":"x"}"#,
        r#"{"id":"m\u2028","kind":"text","body":"x"}"#,
        // serde_json's private tokens: `Value` reads such an object as something else.
        r#"{"$serde_json::private::RawValue":"{\"id\":\"m\",\"kind\":\"k\",\"body\":1}"}"#,
        r#"{"$serde_json::private::RawValue":"{\"id\":\"m\"}","id":"m","kind":"k","body":1}"#,
        r#"{"id":"m","kind":"k","body":{"$serde_json::private::RawValue":"\"\\u0000\""}}"#,
        r#"{"id":"m","kind":"k","body":{"$serde_json::private::RawValue":"[1"}}"#,
        r#"{"id":"m","kind":"k","body":{"$serde_json::private::Number":"1"}}"#,
        r#"{"id":"m","kind":"k","body":{"$other":1}}"#,
        r#"["m","text","x"]"#,
        r#""just a string""#,
        "",
        " ",
        "null",
        "{}",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .chain([
        b"\xff\xfe".to_vec(),
        b"{\"id\":\"m\",\"kind\":\"text\",\"body\":\"\xff\"}".to_vec(),
        b"{\"id\":\"m\",\"kind\":\"text\",\"body\":\"a\x01b\"}".to_vec(),
        b"{\"id\":\"m\",\"kind\":\"text\",\"body\":\"a\x00b\"}".to_vec(),
        deep(126).into_bytes(),
        deep(127).into_bytes(),
        deep(128).into_bytes(),
        deep(1000).into_bytes(),
        format!(
            r#"{{"id":"{}","kind":"k","body":1}}"#,
            "\u{1F426}".repeat(64)
        )
        .into_bytes(),
        format!(
            r#"{{"id":"{}","kind":"k","body":1}}"#,
            "\u{1F426}".repeat(65)
        )
        .into_bytes(),
    ])
    .collect();
    let mut accepted = 0;
    for case in &cases {
        accepted += usize::from(same(case, 64 * 1024).is_ok());
        // The size bound comes first, as in the full parse.
        let bounded = same(case, case.len().saturating_sub(1));
        if !case.is_empty() {
            assert_eq!(bounded, Err(PayloadError::TooLarge(case.len())));
        }
    }
    assert!(accepted >= 20, "only {accepted} edge cases accepted");
}

/// xorshift64*: a fixed-seed generator, enough to spread inputs around.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const KEYS: &[&str] = &[
    "id",
    "id",
    "kind",
    "kind",
    "body",
    "body",
    "reply_to",
    "ts",
    "extra",
    "x",
    r"\u0069d",
    r"bo\u0064y",
    r"e\u0000",
    "$serde_json::private::RawValue",
    "$a",
    "",
];

const STRINGS: &[&str] = &[
    r#""m1""#,
    r#""text""#,
    r#""""#,
    r#""hello world""#,
    r#""a\nb""#,
    r#""a\u0000b""#,
    r#""\\u0000""#,
    r#""\u0007""#,
    r#""\u009f""#,
    r#""\ud83d\ude00""#,
    r#""\ud800""#,
    r#""é🐦""#,
    r#""\"quoted\"""#,
    r#""{\"id\":\"m\",\"kind\":\"k\",\"body\":\"\\u0000\"}""#,
];

const SCALARS: &[&str] = &[
    "null",
    "true",
    "false",
    "0",
    "-0",
    "1",
    "-1",
    "1.0",
    "1e3",
    "1e400",
    "-1e400",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775809",
    "18446744073709551616",
    "1700000000000",
    "00",
    "-",
    "1.",
    ".5",
];

/// A JSON-ish value, mostly well-formed, `depth` levels deep at most.
fn value(r: &mut Rng, depth: u32, out: &mut String) {
    match r.below(if depth == 0 { 4 } else { 6 }) {
        0 | 1 => out.push_str(r.pick(STRINGS)),
        2 | 3 => out.push_str(r.pick(SCALARS)),
        4 => {
            out.push('[');
            for i in 0..r.below(4) {
                if i > 0 {
                    out.push(',');
                }
                value(r, depth - 1, out);
            }
            out.push(']');
        }
        _ => {
            out.push('{');
            for i in 0..r.below(4) {
                if i > 0 {
                    out.push(',');
                }
                out.push('"');
                out.push_str(r.pick(KEYS));
                out.push_str("\":");
                value(r, depth - 1, out);
            }
            out.push('}');
        }
    }
}

/// A chat-like object: the usual fields, most of them good, some bad, some repeated.
fn payload(r: &mut Rng) -> String {
    let mut out = String::from("{");
    let mut fields: Vec<(&str, String)> = Vec::new();
    let good = [
        ("id", r#""m1""#),
        ("kind", r#""text""#),
        ("body", r#""hi""#),
        ("reply_to", r#""m0""#),
        ("ts", "1700000000000"),
    ];
    for (key, v) in good {
        match r.below(10) {
            0 => {}
            1 | 2 => {
                let mut s = String::new();
                value(r, 3, &mut s);
                fields.push((key, s));
            }
            _ => fields.push((key, v.to_owned())),
        }
    }
    for _ in 0..r.below(3) {
        let mut s = String::new();
        value(r, 4, &mut s);
        fields.push((r.pick(KEYS), s));
    }
    // Shuffle.
    for i in (1..fields.len()).rev() {
        fields.swap(i, r.below(i + 1));
    }
    for (i, (key, v)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(if r.below(8) == 0 { " \"" } else { "\"" });
        out.push_str(key);
        out.push_str("\":");
        out.push_str(v);
    }
    out.push('}');
    out
}

/// A few random byte edits, with bytes that matter to JSON.
fn mutate(r: &mut Rng, mut bytes: Vec<u8>) -> Vec<u8> {
    const ALPHABET: &[u8] = b"{}[]\",:\\u0 nte.-9\x00\x01\xff$";
    for _ in 0..1 + r.below(3) {
        let at = r.below(bytes.len() + 1);
        match r.below(3) {
            0 if at < bytes.len() => {
                bytes.remove(at);
            }
            1 if at < bytes.len() => bytes[at] = ALPHABET[r.below(ALPHABET.len())],
            _ => bytes.insert(at, ALPHABET[r.below(ALPHABET.len())]),
        }
    }
    bytes
}

#[test]
fn generated_payloads_agree() {
    let mut r = Rng(0x5eed_cafe_f00d_1234);
    let (mut accepted, mut refused, mut fast) = (0, 0, 0);
    for _ in 0..60_000 {
        let p = payload(&mut r).into_bytes();
        let m = mutate(&mut r, p.clone());
        for case in [p, m] {
            match same(&case, 64 * 1024) {
                Ok(()) => accepted += 1,
                Err(_) => refused += 1,
            }
            fast += usize::from(certainly_valid(&case));
        }
    }
    eprintln!("accepted {accepted}, refused {refused}, fast path {fast}");
    // Both verdicts are well represented, and the fast path decides most accepted payloads
    // (the generator makes many it leaves to the full parse: repeated fields, float `ts`,
    // `$` keys).
    assert!(
        accepted > 10_000 && refused > 10_000,
        "{accepted} / {refused}"
    );
    assert!(fast * 2 > accepted, "fast path {fast} of {accepted}");
}
