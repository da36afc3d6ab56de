//! Where a request's workspace comes from. Pure: it reads only the parts of the request it is given.
//!
//! Laravel → Node requests carry the workspace in one of four places (CONTRACTS.md §1): an explicit
//! header, a session id `webjs_{workspace}_{unix}_{rand}` (path segment, query or body
//! `session_id`), the query parameter `workspace_id`, or the JSON body field `workspace_id`.
//! Sources are tried in the configured order; the first that yields a workspace wins.

use super::Source;
use std::borrow::Cow;

/// The request body as extraction sees it.
#[derive(Debug, Clone, Copy)]
pub enum Body<'a> {
    /// Not read yet: extraction stops with [`Outcome::NeedBody`] when it gets to a body source.
    NotRead,
    /// Not inspectable (not JSON, too large, or streamed): body sources yield nothing.
    Unavailable,
    /// The complete JSON body.
    Json(&'a [u8]),
}

/// The parts of a request that extraction looks at.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    /// Value of the configured workspace header, if present.
    pub header: Option<&'a [u8]>,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub body: Body<'a>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Found {
        workspace: u64,
        source: Source,
        /// The session id the request names, if extraction saw one (for the learned table).
        session_id: Option<String>,
    },
    /// A body source is next and the body has not been read.
    NeedBody,
    NotFound {
        session_id: Option<String>,
    },
}

/// Tries `sources` in order against `req`.
pub fn extract(sources: &[Source], req: &RequestView<'_>) -> Outcome {
    let mut session_id = None;
    let body = match req.body {
        Body::Json(bytes) => Some(BodyFields::parse(bytes)),
        _ => None,
    };
    for source in sources {
        let workspace = match source {
            Source::Header => req.header.and_then(parse_workspace),
            Source::Query => {
                query_param(req.query, "workspace_id").and_then(|v| parse_workspace(v.as_bytes()))
            }
            Source::Body if matches!(req.body, Body::NotRead) => return Outcome::NeedBody,
            Source::Body => body.as_ref().and_then(|b| b.workspace_id),
            Source::Session => {
                let outside_body = session_in_path(req.path)
                    .map(str::to_string)
                    .or_else(|| query_param(req.query, "session_id").map(Cow::into_owned))
                    .filter(|id| session_workspace(id).is_some());
                if outside_body.is_none() && matches!(req.body, Body::NotRead) {
                    return Outcome::NeedBody;
                }
                let found =
                    outside_body.or_else(|| body.as_ref().and_then(|b| b.session_id.clone()));
                let workspace = found.as_deref().and_then(session_workspace);
                if workspace.is_some() {
                    session_id = found;
                }
                workspace
            }
        };
        if let Some(workspace) = workspace {
            return Outcome::Found {
                workspace,
                source: *source,
                session_id,
            };
        }
    }
    Outcome::NotFound { session_id }
}

/// A workspace id: ASCII digits only (surrounding whitespace allowed), fitting in u64.
pub fn parse_workspace(value: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(value).ok()?.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// The workspace inside `webjs_{workspace}_{unixSeconds}_{alnum}`.
pub fn session_workspace(session_id: &str) -> Option<u64> {
    let rest = session_id.strip_prefix("webjs_")?;
    let mut parts = rest.splitn(3, '_');
    let workspace = parts.next()?;
    let stamp = parts.next()?;
    let suffix = parts.next()?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let alnum = !suffix.is_empty() && suffix.bytes().all(|b| b.is_ascii_alphanumeric());
    (digits(workspace) && digits(stamp) && alnum)
        .then(|| parse_workspace(workspace.as_bytes()))
        .flatten()
}

/// The first path segment that is a well-formed session id.
pub fn session_in_path(path: &str) -> Option<&str> {
    path.split('/').find(|seg| session_workspace(seg).is_some())
}

/// The first value of `name` in a query string, percent-decoded.
pub fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<Cow<'a, str>> {
    query?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (decode(key) == name).then(|| decode(value))
    })
}

fn decode(text: &str) -> Cow<'_, str> {
    if !text.contains(['%', '+']) {
        return Cow::Borrowed(text);
    }
    let spaced = text.replace('+', " ");
    Cow::Owned(
        percent_encoding::percent_decode_str(&spaced)
            .decode_utf8_lossy()
            .into_owned(),
    )
}

/// The two body fields routing reads.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct BodyFields {
    pub workspace_id: Option<u64>,
    pub session_id: Option<String>,
}

impl BodyFields {
    /// Reads top-level `workspace_id` (number or digit string) and `session_id` from a JSON object.
    /// Anything else (invalid JSON, an array, a negative or fractional id) yields nothing.
    pub fn parse(body: &[u8]) -> Self {
        #[derive(serde::Deserialize)]
        struct Fields {
            workspace_id: Option<serde_json::Value>,
            session_id: Option<serde_json::Value>,
        }
        // serde would also read a struct from an array: only a JSON object counts.
        let is_object = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
        let Some(fields) = is_object
            .then(|| serde_json::from_slice::<Fields>(body).ok())
            .flatten()
        else {
            return Self::default();
        };
        let workspace_id = match fields.workspace_id {
            Some(serde_json::Value::Number(n)) => n.as_u64(),
            Some(serde_json::Value::String(s)) => parse_workspace(s.as_bytes()),
            _ => None,
        };
        let session_id = match fields.session_id {
            Some(serde_json::Value::String(s)) => Some(s),
            _ => None,
        };
        Self {
            workspace_id,
            session_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Source::{Header, Query, Session};
    const BODY: Source = Source::Body;

    const ALL: [Source; 4] = [Header, Session, Query, BODY];

    fn view<'a>(
        header: Option<&'a str>,
        path: &'a str,
        query: Option<&'a str>,
        body: Body<'a>,
    ) -> RequestView<'a> {
        RequestView {
            header: header.map(str::as_bytes),
            path,
            query,
            body,
        }
    }

    fn found(workspace: u64, source: Source, session: Option<&str>) -> Outcome {
        Outcome::Found {
            workspace,
            source,
            session_id: session.map(String::from),
        }
    }

    #[test]
    fn the_header_wins_when_listed_first() {
        let req = view(
            Some("7"),
            "/api/sessions/webjs_9_1700000000_abcd1234/status",
            None,
            Body::NotRead,
        );
        assert_eq!(extract(&ALL, &req), found(7, Header, None));
    }

    #[test]
    fn a_session_id_in_the_path_names_the_workspace_without_reading_the_body() {
        let req = view(
            None,
            "/api/sessions/webjs_9_1700000000_abcd1234/status",
            None,
            Body::NotRead,
        );
        assert_eq!(
            extract(&ALL, &req),
            found(9, Session, Some("webjs_9_1700000000_abcd1234"))
        );
    }

    #[test]
    fn body_sources_ask_for_the_body_then_use_it() {
        let sources = [Header, Query, BODY];
        let bare = view(None, "/api/messages/send", None, Body::NotRead);
        assert_eq!(extract(&sources, &bare), Outcome::NeedBody);
        let body = br#"{"workspace_id": 12, "to": "x"}"#;
        let read = view(None, "/api/messages/send", None, Body::Json(body));
        assert_eq!(extract(&sources, &read), found(12, BODY, None));
    }

    #[test]
    fn the_query_is_read_before_the_body_when_listed_first() {
        let req = view(
            None,
            "/api/sessions",
            Some("api_key=k&workspace_id=%33"),
            Body::NotRead,
        );
        assert_eq!(extract(&[Query, BODY], &req), found(3, Query, None));
    }

    #[test]
    fn a_session_id_in_the_body_is_used_and_reported() {
        let body = br#"{"session_id":"webjs_5_1700000000_zz99ZZ99","workspace_id":6}"#;
        let req = view(None, "/api/messages/send", None, Body::Json(body));
        assert_eq!(
            extract(&ALL, &req),
            found(5, Session, Some("webjs_5_1700000000_zz99ZZ99"))
        );
    }

    #[test]
    fn unavailable_bodies_yield_nothing() {
        let req = view(None, "/api/messages/send", None, Body::Unavailable);
        assert_eq!(extract(&ALL, &req), Outcome::NotFound { session_id: None });
    }

    #[test]
    fn workspace_values_must_be_plain_non_negative_integers() {
        assert_eq!(parse_workspace(b" 42 "), Some(42));
        for bad in [
            &b""[..],
            b"-1",
            b"4.2",
            b"1e3",
            b"abc",
            b"99999999999999999999999",
            b"\xff",
        ] {
            assert_eq!(parse_workspace(bad), None, "{bad:?}");
        }
        assert_eq!(
            BodyFields::parse(br#"{"workspace_id":-3}"#).workspace_id,
            None
        );
        assert_eq!(
            BodyFields::parse(br#"{"workspace_id":"8"}"#).workspace_id,
            Some(8)
        );
        assert_eq!(BodyFields::parse(br#"[1,2]"#), BodyFields::default());
        assert_eq!(BodyFields::parse(b"not json"), BodyFields::default());
    }

    #[test]
    fn session_ids_follow_the_webjs_pattern() {
        assert_eq!(session_workspace("webjs_1_1700000000_a1B2c3D4"), Some(1));
        for bad in [
            "webjs_1_1700000000_",
            "webjs_x_1_abc",
            "webjs__1_abc",
            "web_1_1_abc",
            "webjs_1_17a_abc",
            "webjs_1",
        ] {
            assert_eq!(session_workspace(bad), None, "{bad}");
        }
    }
}
