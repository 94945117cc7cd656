//! [`Pipeline`]: requests queued on a [`Client`] and sent in one write, their answers
//! read back in order.

use super::{answering, Client, ClientError, Result};
use crate::protocol::{Request, RequestId, ResponseBody, Status};
use bytes::Bytes;

/// Requests queued on a [`Client`], sent together by [`send`](Pipeline::send).
#[derive(Debug)]
#[must_use = "a pipeline does nothing until sent"]
pub struct Pipeline<'a> {
    client: &'a mut Client,
    ids: Vec<RequestId>,
}

impl<'a> Pipeline<'a> {
    pub(super) fn new(client: &'a mut Client) -> Pipeline<'a> {
        Pipeline {
            client,
            ids: Vec::new(),
        }
    }

    /// Queues any request.
    pub fn request(mut self, request: &Request) -> Self {
        let id = self.client.queue(request);
        self.ids.push(id);
        self
    }

    /// Queues a GET.
    pub fn get(self, key: impl Into<Bytes>) -> Self {
        self.request(&Request::Get { key: key.into() })
    }

    /// Queues a PUT.
    pub fn put(self, key: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        self.request(&Request::Put {
            key: key.into(),
            value: value.into(),
            ttl_ms: 0,
        })
    }

    /// Queues a PING.
    pub fn ping(self) -> Self {
        self.request(&Request::Ping {
            payload: Bytes::new(),
        })
    }

    /// Writes every queued request at once and reads all the answers, in order.
    /// Error statuses are returned as bodies, not as errors. When the server stops
    /// meanwhile, the requests its GOAWAY says it did not carry out get a
    /// SHUTTING_DOWN body each, as if it had answered them so.
    ///
    /// # Errors
    /// When the connection fails, or an answer is out of order;
    /// [`ClientError::GoingAway`] when the server had stopped before the pipeline.
    pub fn send(self) -> Result<Vec<ResponseBody>> {
        if let Some(handled) = self.client.goaway {
            self.client.write_buf.clear();
            return Err(ClientError::GoingAway { handled });
        }
        self.client.flush()?;
        let mut bodies = Vec::with_capacity(self.ids.len());
        for expected in self.ids {
            let body = match self.client.recv() {
                Ok(response) => answering(expected, response)?.body,
                Err(e @ ClientError::GoingAway { .. }) => ResponseBody::Error {
                    status: Status::SHUTTING_DOWN,
                    message: Bytes::from(e.to_string()),
                },
                Err(e) => return Err(e),
            };
            bodies.push(body);
        }
        Ok(bodies)
    }
}
