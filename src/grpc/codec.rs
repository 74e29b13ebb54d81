//! The protobuf codec of every service `build.rs` generates: prost's, except that a message
//! that does not parse is the caller's fault, answered `INVALID_ARGUMENT` with prost's reason.
//!
//! tonic's prost codec answers `INTERNAL`, as the gRPC status-code guide lists for "error
//! parsing request proto"; inferd keeps `INTERNAL` for its own faults only (a client must be
//! able to tell "fix your request" from "the server broke": the HTTP side answers 400 for a body
//! that does not parse). The generated clients share the codec, so a client of these stubs reads
//! an answer that does not parse as `INVALID_ARGUMENT` too.

use tonic::{
    codec::{BufferSettings, Codec, DecodeBuf, Decoder},
    Status,
};
use tonic_prost::ProstCodec;

/// prost's codec with client-fault decode errors.
#[derive(Debug, Clone)]
pub struct StrictCodec<T, U>(ProstCodec<T, U>);

impl<T, U> Default for StrictCodec<T, U> {
    fn default() -> Self {
        Self(ProstCodec::default())
    }
}

impl<T, U> Codec for StrictCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = <ProstCodec<T, U> as Codec>::Encoder;
    type Decoder = StrictDecoder<<ProstCodec<T, U> as Codec>::Decoder>;

    fn encoder(&mut self) -> Self::Encoder {
        self.0.encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        StrictDecoder(self.0.decoder())
    }
}

/// A decoder whose failures are `INVALID_ARGUMENT`.
#[derive(Debug)]
pub struct StrictDecoder<D>(D);

impl<D: Decoder<Error = Status>> Decoder for StrictDecoder<D> {
    type Item = D::Item;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Status> {
        self.0.decode(src).map_err(|e| {
            Status::invalid_argument(format!("malformed request message: {}", e.message()))
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}
