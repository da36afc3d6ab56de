//! A request as it goes on the wire: its head encoded once, and a small body read first and
//! sent in the same write.

use super::*;

/// A body read before forwarding up to this size goes out in the same write as the head (and
/// a body with a declared length up to it is read first).
const COALESCE: usize = 16 * 1024;

/// A request as it goes on the wire.
pub(super) struct Encoded {
    /// The head, with the body after it when `inline`.
    pub head: Vec<u8>,
    /// The body (kept when inline too, should the request go to another instance).
    pub body: Outgoing,
    pub inline: bool,
    /// The body streams in chunks, as the client sent it.
    pub chunked: bool,
    /// The body streams from the client (so the request cannot be sent again).
    pub streamed: bool,
}

pub(super) async fn encode(
    parts: &http::request::Parts,
    body: Outgoing,
    add: &Forwarding<'_>,
) -> Result<Encoded, SendError> {
    // A small body with a declared length is read first and sent with the head in one write,
    // as nginx buffers request bodies: one system call, and a request that can be sent again.
    let mut body = match super::super::hygiene::content_length(&parts.headers) {
        Some(len) if len as usize <= COALESCE => buffer(body).await?,
        _ => body,
    };
    let streamed = matches!(body, Outgoing::Stream { .. });
    let mut head = Vec::with_capacity(512);
    let whole = match &body {
        Outgoing::Full(bytes) => Some(bytes.as_ref().map_or(0, Bytes::len)),
        Outgoing::Stream { .. } => None,
    };
    h1::encode_request(
        &mut head,
        &parts.method,
        &parts.uri,
        &parts.headers,
        whole,
        add,
    );
    let inline = match &body {
        Outgoing::Full(Some(bytes)) if bytes.len() <= COALESCE => {
            head.extend_from_slice(bytes);
            true
        }
        _ => false,
    };
    // A streamed body keeps the client's framing: its length, or chunks; neither means none.
    let chunked = whole.is_none() && parts.headers.contains_key(http::header::TRANSFER_ENCODING);
    let framed = chunked || parts.headers.contains_key(http::header::CONTENT_LENGTH);
    if whole.is_none() && !framed {
        body = Outgoing::Full(None);
    }
    Ok(Encoded {
        head,
        body,
        inline,
        chunked,
        streamed: streamed && framed,
    })
}

/// A streamed body read whole (within its route's limit, which the stream enforces). A body
/// that came in one piece (a small body arrives with its head) is kept as is, without a copy.
async fn buffer(mut body: Outgoing) -> Result<Outgoing, SendError> {
    if let Outgoing::Full(_) = body {
        return Ok(body);
    }
    let mut first: Option<Bytes> = None;
    let mut joined: Option<BytesMut> = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| match e {
            OutgoingError::TooLarge => SendError::TooLarge,
            OutgoingError::Read(e) => SendError::ClientBody(e.into()),
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        match (&mut joined, first.take()) {
            (Some(joined), _) => joined.extend_from_slice(&data),
            (None, None) => first = Some(data),
            (None, Some(earlier)) => {
                let mut both = BytesMut::with_capacity(earlier.len() + data.len());
                both.extend_from_slice(&earlier);
                both.extend_from_slice(&data);
                joined = Some(both);
            }
        }
    }
    Ok(Outgoing::Full(Some(match joined {
        Some(joined) => joined.freeze(),
        None => first.unwrap_or_default(),
    })))
}
