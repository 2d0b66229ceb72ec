//! Vary matching: the request's values of a response's `Vary` fields, normalised so that
//! equivalent requests share a variant (RFC 9111 §4.1).
//!
//! §4.1 lets a cache match two requests whose fields differ only by whitespace the field's
//! syntax allows, by how their lines are combined, or by a normalisation the field's
//! specification says keeps its meaning (member order where it is not significant, letter case
//! where values are case-insensitive). Each field gets only what its definition allows:
//!
//! | fields | whitespace | letter case | member order |
//! | --- | --- | --- | --- |
//! | `Accept-Encoding`, `Accept-Charset`, `Accept-Language` | removed (tokens and weights hold none) | ignored (codings, charsets and language tags are case-insensitive) | ignored: members sorted, duplicates and empty members dropped |
//! | `Accept` | removed | ignored in media types and parameter names, kept in parameter values | ignored, as above |
//! | `Cookie` | each line trimmed, runs of spaces made one | kept | kept (lines joined with `; `, as HTTP/2 splits them) |
//! | any other field (`Authorization`, `User-Agent`, `Origin`, ...) | each line trimmed, runs of spaces made one | kept | kept (lines joined with `, `) |
//!
//! A value holding a quoted string (`"`) is compared as sent, only its lines trimmed and
//! joined: inside quotes whitespace, case and commas are significant. Weights are compared as
//! written (`q=1` and no weight are different variants). A field absent from the request
//! matches only a request without it; an empty one is not absent.

use http::header::{GetAll, HeaderMap, HeaderValue};

/// How one field's value is normalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// A list of case-insensitive tokens with weights: lowercased, sorted.
    Tokens,
    /// `Accept`: media ranges, case-insensitive but for parameter values, sorted.
    MediaRanges,
    /// Lines joined with `; `, spaces collapsed.
    Cookie,
    /// Lines joined with `, `, spaces collapsed.
    Exact,
}

fn form(name: &str) -> Form {
    match name {
        "accept-encoding" | "accept-charset" | "accept-language" => Form::Tokens,
        "accept" => Form::MediaRanges,
        "cookie" => Form::Cookie,
        _ => Form::Exact,
    }
}

/// The request's values of the `Vary` fields `names` (lowercase), each normalised as the module
/// docs say; `None` when the request does not have the field.
pub(crate) fn vary_values(names: &[String], headers: &HeaderMap) -> Vec<Option<Vec<u8>>> {
    names
        .iter()
        .map(|name| {
            headers.get(name.as_str())?;
            Some(normalise(form(name), headers.get_all(name.as_str())))
        })
        .collect()
}

fn normalise(form: Form, lines: GetAll<'_, HeaderValue>) -> Vec<u8> {
    let quoted = lines.iter().any(|line| line.as_bytes().contains(&b'"'));
    match form {
        Form::Tokens | Form::MediaRanges if !quoted => {
            let mut members: Vec<Vec<u8>> = Vec::new();
            for line in &lines {
                for member in line.as_bytes().split(|&b| b == b',') {
                    let member = list_member(form, member);
                    if !member.is_empty() {
                        members.push(member);
                    }
                }
            }
            members.sort_unstable();
            members.dedup();
            members.join(&b","[..])
        }
        Form::Cookie => joined(lines.iter(), b"; ", !quoted),
        _ => joined(lines.iter(), b", ", !quoted),
    }
}

/// One list member without whitespace, lowercased where its field is case-insensitive.
fn list_member(form: Form, member: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(member.len());
    // In `Accept`, a parameter's value (after `=`, up to the next `;`) keeps its case.
    let mut in_value = false;
    for &b in member {
        match b {
            b' ' | b'\t' => {}
            b';' => {
                in_value = false;
                out.push(b);
            }
            b'=' if form == Form::MediaRanges => {
                in_value = true;
                out.push(b);
            }
            _ if in_value => out.push(b),
            _ => out.push(b.to_ascii_lowercase()),
        }
    }
    // `q=` weights are case-insensitive (`Q=0.5`): the name was lowercased with the rest.
    out
}

/// The lines trimmed and joined with `separator`; runs of spaces and tabs made one space when
/// `collapse`.
fn joined<'a>(
    lines: impl Iterator<Item = &'a HeaderValue>,
    separator: &[u8],
    collapse: bool,
) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::new();
    for (i, line) in lines.enumerate() {
        if i > 0 {
            out.extend_from_slice(separator);
        }
        let line = line.as_bytes().trim_ascii();
        if !collapse {
            out.extend_from_slice(line);
            continue;
        }
        let mut space = false;
        for &b in line {
            if b == b' ' || b == b'\t' {
                space = true;
                continue;
            }
            if space {
                out.push(b' ');
                space = false;
            }
            out.push(b);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(name: &str, lines: &[&'static str]) -> Option<String> {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_static(line),
            );
        }
        vary_values(&[name.to_owned()], &headers)
            .pop()
            .unwrap()
            .map(|v| String::from_utf8(v).unwrap())
    }

    #[test]
    fn token_lists_ignore_whitespace_case_and_order() {
        let canonical = Some("br,gzip;q=0.8".to_owned());
        assert_eq!(value("accept-encoding", &["gzip;q=0.8, br"]), canonical);
        assert_eq!(value("accept-encoding", &[" BR ,GZIP ; Q=0.8 "]), canonical);
        assert_eq!(value("accept-encoding", &["br", "gzip;q=0.8"]), canonical);
        assert_eq!(value("accept-encoding", &["gzip;q=0.8,,br, br"]), canonical);
        assert_ne!(value("accept-encoding", &["gzip;q=0.5, br"]), canonical);
        assert_eq!(
            value("accept-language", &["fr-CH, en;q=0.9"]),
            value("accept-language", &["en;q=0.9,fr-ch"])
        );
        assert_ne!(
            value("accept-language", &["fr"]),
            value("accept-language", &["en"])
        );
        assert_eq!(value("accept-language", &[""]), Some(String::new()));
        assert_eq!(value("accept-language", &[]), None);
    }

    #[test]
    fn accept_keeps_the_case_of_parameter_values() {
        assert_eq!(
            value("accept", &["Text/HTML; Level=1, application/json"]),
            Some("application/json,text/html;level=1".to_owned())
        );
        assert_ne!(
            value("accept", &["text/html;profile=A"]),
            value("accept", &["text/html;profile=a"])
        );
    }

    #[test]
    fn quoted_values_are_compared_as_sent() {
        assert_eq!(
            value("accept", &[" text/html;p=\"B,  a\" "]),
            Some("text/html;p=\"B,  a\"".to_owned())
        );
        assert_ne!(
            value("accept", &["text/html;p=\"a, b\""]),
            value("accept", &["text/html;p=\"b, a\""])
        );
    }

    #[test]
    fn other_fields_keep_case_and_order() {
        assert_eq!(
            value("cookie", &["a=1;   b=2", " c=3 "]),
            Some("a=1; b=2; c=3".to_owned())
        );
        assert_ne!(
            value("cookie", &["a=1; b=2"]),
            value("cookie", &["b=2; a=1"])
        );
        assert_ne!(value("cookie", &["id=A"]), value("cookie", &["id=a"]));
        assert_ne!(
            value("authorization", &["Bearer Abc"]),
            value("authorization", &["Bearer abc"])
        );
        assert_eq!(
            value("x-client", &[" a ", "b"]),
            value("x-client", &["a, b"])
        );
        assert_eq!(
            value("user-agent", &["Mozilla/5.0  (X11)"]),
            Some("Mozilla/5.0 (X11)".to_owned())
        );
    }
}
