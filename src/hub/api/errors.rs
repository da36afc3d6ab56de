//! The Pusher HTTP API's refusals: one enum, one table of HTTP statuses and stable codes.

use super::super::auth::ApiAuthError;
use super::super::events::PublishError;

#[derive(Debug)]
pub enum ApiError {
    /// No such endpoint.
    NotFound,
    /// No app with the path's id.
    UnknownApp,
    BodyTooLarge,
    BodyUnreadable,
    /// The body is not the event(s) expected (what is wrong).
    InvalidEvent(&'static str),
    /// More events in a batch than the app's `max_batch_size` (the limit).
    BatchTooLarge(usize),
    /// Over the app's `api_requests_per_second`.
    RateLimited,
    /// A query that cannot be answered (why).
    InvalidQuery(&'static str),
    /// A channel the endpoint cannot answer about (why).
    InvalidChannel(&'static str),
    /// The request's signature, key or timestamp.
    Auth(ApiAuthError),
    /// The event itself ([`PublishError`]'s own table).
    Publish(PublishError),
}

impl ApiError {
    pub fn status_and_code(&self) -> (u16, &'static str) {
        match self {
            ApiError::NotFound => (404, "hub.not_found"),
            ApiError::UnknownApp => (404, "hub.unknown_app"),
            ApiError::BodyTooLarge => (413, "request.body_too_large"),
            ApiError::BodyUnreadable => (400, "request.malformed"),
            ApiError::InvalidEvent(_) => (400, "hub.invalid_event"),
            ApiError::BatchTooLarge(_) => (400, "hub.batch_too_large"),
            ApiError::RateLimited => (429, "hub.rate_limited"),
            ApiError::InvalidQuery(_) => (400, "hub.invalid_query"),
            ApiError::InvalidChannel(_) => (400, "hub.invalid_channel"),
            ApiError::Auth(e) => (e.status(), e.code()),
            ApiError::Publish(e) => e.status_and_code(),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::NotFound => f.write_str("no such endpoint"),
            ApiError::UnknownApp => f.write_str("no such app"),
            ApiError::BodyTooLarge => f.write_str("request body too large"),
            ApiError::BodyUnreadable => f.write_str("the request body could not be read"),
            ApiError::BatchTooLarge(limit) => write!(f, "at most {limit} events per batch"),
            ApiError::RateLimited => f.write_str("over the app's API requests per second"),
            ApiError::InvalidEvent(why) | ApiError::InvalidQuery(why) => f.write_str(why),
            ApiError::InvalidChannel(why) => f.write_str(why),
            ApiError::Auth(e) => e.fmt(f),
            ApiError::Publish(e) => e.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The answers are part of the API's contract (Pusher's libraries show them): pinned.
    #[test]
    fn each_refusal_has_its_status_and_code() {
        let table = [
            (ApiError::NotFound, 404, "hub.not_found"),
            (ApiError::UnknownApp, 404, "hub.unknown_app"),
            (ApiError::BodyTooLarge, 413, "request.body_too_large"),
            (ApiError::BodyUnreadable, 400, "request.malformed"),
            (ApiError::InvalidEvent("x"), 400, "hub.invalid_event"),
            (ApiError::BatchTooLarge(10), 400, "hub.batch_too_large"),
            (ApiError::RateLimited, 429, "hub.rate_limited"),
            (ApiError::InvalidQuery("x"), 400, "hub.invalid_query"),
            (ApiError::InvalidChannel("x"), 400, "hub.invalid_channel"),
            (
                ApiError::Publish(PublishError::TooLarge { size: 2, limit: 1 }),
                413,
                "hub.message_too_large",
            ),
        ];
        for (error, status, code) in table {
            assert_eq!(error.status_and_code(), (status, code), "{error}");
        }
    }
}
