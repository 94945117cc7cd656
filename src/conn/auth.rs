//! A connection to a server that requires a token, before it has shown one.
//!
//! Until then frames may be at most [`PRE_AUTH_MAX_FRAME`] bytes (the decoder is set
//! up with that limit, so a larger declared length is refused from the frame's first
//! bytes), and the first frame decides: a HELLO with the right token opens the
//! connection to everything `max_frame` allows; anything else is answered with a
//! fatal AUTH_REQUIRED or AUTH_FAILED, and nothing sent after it is carried out. A
//! connection that sends no frame at all is closed at its deadline (see `timers`).

use super::{CloseReason, Connection};
use crate::auth::PRE_AUTH_MAX_FRAME;
use crate::job::JobOp;
use crate::protocol::{Decoder, Opcode, Request, RequestError, Status};
use bytes::BytesMut;

/// What AUTH_REQUIRED says when the deadline passes.
const TIMED_OUT: &[u8] = b"no HELLO carrying the token came within the authentication deadline";

impl Connection {
    /// True until the connection has authenticated, on a server that requires it.
    pub fn authenticating(&self) -> bool {
        self.auth_deadline.is_some()
    }

    /// The job for the first frame of a connection that must authenticate.
    pub(super) fn authenticate(
        &mut self,
        decoded: Result<Request, RequestError>,
        opcode: Opcode,
    ) -> JobOp {
        let verdict = match (&decoded, &self.limits.auth) {
            (Ok(Request::Hello { token, .. }), Some(check)) if !token.is_empty() => {
                if check.accepts(token) {
                    Ok(())
                } else {
                    Err((Status::AUTH_FAILED, "wrong token"))
                }
            }
            (Ok(Request::Hello { .. }), _) => Err((
                Status::AUTH_REQUIRED,
                "this server requires a token: send it in HELLO",
            )),
            _ => Err((
                Status::AUTH_REQUIRED,
                "this server requires a token: the first frame must be a HELLO carrying it",
            )),
        };
        match (verdict, decoded) {
            (Ok(()), Ok(request)) => {
                self.auth_deadline = None;
                self.decoder = Decoder::new(self.limits.protocol.max_frame);
                self.negotiate(&request);
                JobOp::Request(request)
            }
            (Err((status, reason)), _) | (Ok(()), Err(RequestError { status, reason })) => {
                self.input = BytesMut::new();
                self.begin_close(CloseReason::Unauthenticated);
                JobOp::Reject {
                    opcode,
                    status,
                    reason,
                }
            }
        }
    }

    /// The authentication deadline passed: tell the client (unprompted) and close.
    pub(super) fn handle_auth_timeout(&mut self) {
        self.auth_deadline = None;
        self.tell_and_stop_reading(Status::AUTH_REQUIRED, TIMED_OUT);
        self.begin_close(CloseReason::AuthTimeout);
    }
}

/// The largest frame before authentication must hold a HELLO with the longest token.
const _: () = assert!(
    PRE_AUTH_MAX_FRAME as usize >= 4 + 8 + 1 + 4 + 2 + crate::auth::MAX_TOKEN,
    "a HELLO with the longest token must fit before authentication"
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::TokenCheck;
    use crate::conn::{ConnLimits, State};
    use crate::job::{ConnId, Job};
    use crate::protocol::{Limits, RequestId, Response, ResponseBody};
    use bytes::Bytes;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    const TIMEOUT: Duration = Duration::from_secs(5);

    fn connection(now: Instant) -> Connection {
        let limits = ConnLimits {
            protocol: Limits::default(),
            max_output: 1 << 20,
            max_in_flight: 16,
            idle_timeout: None,
            linger: Duration::from_secs(1),
            closing_timeout: Duration::from_secs(1),
            frame_timeout: None,
            write_timeout: None,
            auth: Some(Arc::new(TokenCheck::from_token(b"s3cret"))),
            auth_timeout: TIMEOUT,
        };
        let id = ConnId {
            index: 0,
            generation: 0,
        };
        Connection::new(id, limits, now)
    }

    fn frame(request: Request, id: u32) -> BytesMut {
        let mut buf = BytesMut::new();
        request.encode(RequestId(id), &mut buf);
        buf
    }

    fn hello(token: &'static [u8]) -> BytesMut {
        frame(
            Request::Hello {
                max_version: 1,
                features: 0,
                token: Bytes::from_static(token),
            },
            1,
        )
    }

    fn ping() -> BytesMut {
        frame(
            Request::Ping {
                payload: Bytes::new(),
            },
            2,
        )
    }

    /// Feeds `bytes` and returns the jobs handed out.
    fn feed(conn: &mut Connection, now: Instant, bytes: &[u8]) -> Vec<Job> {
        let mut jobs = Vec::new();
        conn.feed(now, bytes, &mut jobs);
        jobs
    }

    fn rejected(job: &Job) -> Option<Status> {
        match job.op {
            JobOp::Reject { status, .. } => Some(status),
            JobOp::Request(_) => None,
        }
    }

    #[test]
    fn the_right_token_opens_the_connection_to_full_size_frames() {
        let now = Instant::now();
        let mut conn = connection(now);
        assert!(conn.authenticating());
        assert_eq!(conn.poll_timeout(), Some(now + TIMEOUT));
        let mut bytes = hello(b"s3cret");
        bytes.extend_from_slice(&ping());
        let jobs = feed(&mut conn, now, &bytes);
        assert_eq!(jobs.len(), 2);
        assert!(matches!(jobs[0].op, JobOp::Request(Request::Hello { .. })));
        assert!(matches!(jobs[1].op, JobOp::Request(Request::Ping { .. })));
        assert!(!conn.authenticating());
        assert_eq!(conn.poll_timeout(), None, "no deadline once authenticated");
        conn.handle_answered(now, 2);
        let put = frame(
            Request::Put {
                key: Bytes::from_static(b"k"),
                value: Bytes::from(vec![7u8; 100_000]),
                ttl_ms: 0,
            },
            3,
        );
        let jobs = feed(&mut conn, now, &put);
        assert!(matches!(jobs[0].op, JobOp::Request(Request::Put { .. })));
    }

    #[test]
    fn a_wrong_or_missing_token_or_another_first_frame_closes_the_connection() {
        for (first, status) in [
            (hello(b"wrong"), Status::AUTH_FAILED),
            (hello(b"s3cre"), Status::AUTH_FAILED),
            (hello(b""), Status::AUTH_REQUIRED),
            (ping(), Status::AUTH_REQUIRED),
            // A HELLO too long to decode (a token over 256 bytes) proves nothing.
            (
                frame(
                    Request::Hello {
                        max_version: 1,
                        features: 0,
                        token: Bytes::from(vec![b'x'; 300]),
                    },
                    1,
                ),
                Status::AUTH_REQUIRED,
            ),
        ] {
            let now = Instant::now();
            let mut conn = connection(now);
            let mut bytes = first;
            // A request pipelined behind it is never carried out.
            bytes.extend_from_slice(&ping());
            let jobs = feed(&mut conn, now, &bytes);
            assert_eq!(jobs.len(), 1, "{status}");
            assert_eq!(rejected(&jobs[0]), Some(status));
            assert_eq!(conn.state(), State::Closing(CloseReason::Unauthenticated));
            assert!(conn.authenticating(), "still not authenticated");
        }
    }

    #[test]
    fn a_large_frame_before_authentication_is_refused_from_its_header() {
        let now = Instant::now();
        let mut conn = connection(now);
        // Only the length and header: the server need not buffer the body to refuse.
        let mut head = BytesMut::new();
        head.extend_from_slice(&5000u32.to_be_bytes());
        head.extend_from_slice(&[1, 0x02, 0, 0, 0, 0, 0, 9]);
        let jobs = feed(&mut conn, now, &head);
        assert_eq!(rejected(&jobs[0]), Some(Status::FRAME_TOO_LARGE));
        assert!(matches!(conn.state(), State::Closing(_)));
        // Up to the pre-authentication limit, a frame is read.
        let mut conn = connection(now);
        let token = vec![b'x'; 256];
        let mut bytes = BytesMut::new();
        Request::Hello {
            max_version: 1,
            features: 0,
            token: Bytes::from(token),
        }
        .encode(RequestId(1), &mut bytes);
        assert!(bytes.len() <= PRE_AUTH_MAX_FRAME as usize);
        let jobs = feed(&mut conn, now, &bytes);
        assert_eq!(rejected(&jobs[0]), Some(Status::AUTH_FAILED));
    }

    #[test]
    fn a_connection_that_does_not_authenticate_in_time_is_told_and_closed() {
        let now = Instant::now();
        let mut conn = connection(now);
        // Half a HELLO arrives, then nothing.
        let bytes = hello(b"s3cret");
        assert!(feed(&mut conn, now, &bytes[..5]).is_empty());
        let at = conn.poll_timeout().expect("a deadline");
        assert_eq!(at, now + TIMEOUT);
        conn.handle_timeout(at - Duration::from_millis(1));
        assert_eq!(conn.state(), State::Open, "not before its deadline");
        conn.handle_timeout(at);
        assert_eq!(conn.state(), State::Closing(CloseReason::AuthTimeout));
        assert!(conn.poll_timeout().is_none_or(|t| t > at), "fires once");
        let mut out = BytesMut::from(conn.poll_transmit());
        let frame = Decoder::new(Limits::MAX_MAX_FRAME)
            .decode(&mut out)
            .unwrap()
            .expect("a frame");
        match Response::decode(&frame).unwrap().body {
            ResponseBody::Error { status, .. } => assert_eq!(status, Status::AUTH_REQUIRED),
            other => panic!("{other:?}"),
        }
    }
}
