//! gRPC served in process over an in-memory pipe (`tokio::io::duplex`),
//! the way tokio-console tests its service: the real tonic server and
//! client, the real codecs, interceptors and streams, and no socket. For
//! unit tests of services and their clients.

use std::io;

use hyper_util::rt::TokioIo;
use tonic::service::Routes;
use tonic::transport::{Channel, Endpoint, Server, Uri};

/// Bytes buffered in each direction of the pipe.
const PIPE_BYTES: usize = 1 << 20;

/// Serves `routes` on one in-memory connection and returns a client
/// channel to it. The server task ends when the channel is dropped.
pub async fn channel(routes: Routes) -> Channel {
    let (client, server) = tokio::io::duplex(PIPE_BYTES);
    tokio::spawn(async move {
        let incoming = tokio_stream::once(Ok::<_, io::Error>(server));
        if let Err(error) = Server::builder()
            .add_routes(routes)
            .serve_with_incoming(incoming)
            .await
        {
            tracing::warn!(%error, "in-process gRPC server ended");
        }
    });
    let mut client = Some(client);
    Endpoint::from_static("http://in-process.invalid")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let io = client.take().map(TokioIo::new);
            async move {
                io.ok_or_else(|| io::Error::other("the in-process pipe connects only once"))
            }
        }))
        .await
        .expect("an in-memory pipe connects")
}
