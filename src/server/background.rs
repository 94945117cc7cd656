//! A server on a thread of its own, for programs that embed one (and for tests):
//! started with [`Server::spawn`], stopped gracefully by [`Running::stop`] or when
//! dropped.

use super::{Server, ServerError, ShutdownHandle};
use std::io;
use std::net::SocketAddr;
use std::thread::JoinHandle;

/// A server running on its own reactor thread. Dropping it stops the server and waits
/// for the thread, so a server never outlives the value that started it.
#[derive(Debug)]
pub struct Running {
    addr: SocketAddr,
    stop: ShutdownHandle,
    reactor: Option<JoinHandle<Result<(), ServerError>>>,
}

impl Server {
    /// Runs the server on a new thread named `switchboard-reactor`.
    ///
    /// # Errors
    /// When the thread cannot be started.
    pub fn spawn(self) -> io::Result<Running> {
        let addr = self.local_addr();
        let stop = self.shutdown_handle();
        let reactor = std::thread::Builder::new()
            .name("switchboard-reactor".into())
            .spawn(move || self.run())?;
        Ok(Running {
            addr,
            stop,
            reactor: Some(reactor),
        })
    }
}

impl Running {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// A handle that stops the server from anywhere.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.stop.clone()
    }

    /// Stops the server gracefully and waits for it; returns how its loop ended.
    ///
    /// # Errors
    /// What [`Server::run`] returned; a panic on the reactor thread is passed on.
    pub fn stop(mut self) -> Result<(), ServerError> {
        self.finish()
    }

    fn finish(&mut self) -> Result<(), ServerError> {
        self.stop.shutdown();
        match self.reactor.take().map(JoinHandle::join) {
            None => Ok(()),
            Some(Ok(result)) => result,
            Some(Err(panic)) => std::panic::resume_unwind(panic),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Unwinding already: stop the server, but do not panic a second time.
            self.stop.shutdown();
            return;
        }
        let _ = self.finish();
    }
}
