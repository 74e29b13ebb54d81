//! `tei.v1.Tokenize`: texts to tokens and ids back to text on the default model's tokenizer
//! pool (never on the async runtime or the model thread). Untruncated, like HTTP `/tokenize`;
//! an answer over the message limit is RESOURCE_EXHAUSTED before it is encoded.

use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::Tei;
use crate::grpc::{
    call::ordered,
    metrics::observe,
    proto::tei::v1::{
        tokenize_server::Tokenize, DecodeRequest, DecodeResponse, EncodeRequest, EncodeResponse,
        SimpleToken,
    },
    status::CallError,
    GrpcState,
};

const SERVICE: &str = "tei.v1.Tokenize";

async fn tokenize_one(state: &GrpcState, req: EncodeRequest) -> Result<EncodeResponse, CallError> {
    if req.inputs.is_empty() {
        return Err(CallError::InvalidInput(
            "`inputs` is an empty string".into(),
        ));
    }
    let model = state.registry.get(None)?;
    let text = model
        .prompted(req.prompt_name.as_deref(), vec![req.inputs])?
        .pop()
        .unwrap_or_default();
    let special = req.add_special_tokens;
    let pieces = model
        .with_tokenizer(move |tokenizer| tokenizer.pieces(&text, special))
        .await?
        .map_err(|e| CallError::InvalidInput(format!("input 0: {e}")))?;
    let tokens = pieces
        .into_iter()
        .map(|p| SimpleToken {
            id: p.id,
            text: p.text,
            special: p.special,
            start: p.start.map(|s| s as u32),
            stop: p.stop.map(|s| s as u32),
        })
        .collect();
    let answer = EncodeResponse { tokens };
    let (bytes, limit) = (
        prost::Message::encoded_len(&answer),
        state.limits.max_message_bytes,
    );
    if bytes > limit {
        return Err(CallError::TooLarge(format!(
            "the answer would be {bytes} bytes, more than the {limit} allowed (--max-body-bytes); \
             send a shorter text"
        )));
    }
    Ok(answer)
}

async fn decode_one(state: &GrpcState, req: DecodeRequest) -> Result<DecodeResponse, CallError> {
    if req.ids.is_empty() {
        return Err(CallError::InvalidInput("`ids` is an empty list".into()));
    }
    let model = state.registry.get(None)?;
    let text = model
        .decode(vec![req.ids], req.skip_special_tokens)
        .await?
        .map_err(|(_, e)| CallError::InvalidInput(format!("ids: {e}")))?
        .pop()
        .unwrap_or_default();
    Ok(DecodeResponse { text })
}

#[tonic::async_trait]
impl Tokenize for Tei {
    async fn tokenize(
        &self,
        request: Request<EncodeRequest>,
    ) -> Result<Response<EncodeResponse>, Status> {
        observe(SERVICE, "Tokenize", async {
            self.state.admit(request.metadata())?;
            Ok::<_, Status>(Response::new(
                tokenize_one(&self.state, request.into_inner()).await?,
            ))
        })
        .await
    }

    type TokenizeStreamStream = ReceiverStream<Result<EncodeResponse, Status>>;

    async fn tokenize_stream(
        &self,
        request: Request<Streaming<EncodeRequest>>,
    ) -> Result<Response<Self::TokenizeStreamStream>, Status> {
        observe(SERVICE, "TokenizeStream", async {
            self.state.admit(request.metadata())?;
            let state = self.state.clone();
            Ok::<_, Status>(Response::new(ordered(request.into_inner(), move |req| {
                let state = state.clone();
                async move { tokenize_one(&state, req).await.map_err(Status::from) }
            })))
        })
        .await
    }

    async fn decode(
        &self,
        request: Request<DecodeRequest>,
    ) -> Result<Response<DecodeResponse>, Status> {
        observe(SERVICE, "Decode", async {
            self.state.admit(request.metadata())?;
            Ok::<_, Status>(Response::new(
                decode_one(&self.state, request.into_inner()).await?,
            ))
        })
        .await
    }

    type DecodeStreamStream = ReceiverStream<Result<DecodeResponse, Status>>;

    async fn decode_stream(
        &self,
        request: Request<Streaming<DecodeRequest>>,
    ) -> Result<Response<Self::DecodeStreamStream>, Status> {
        observe(SERVICE, "DecodeStream", async {
            self.state.admit(request.metadata())?;
            let state = self.state.clone();
            Ok::<_, Status>(Response::new(ordered(request.into_inner(), move |req| {
                let state = state.clone();
                async move { decode_one(&state, req).await.map_err(Status::from) }
            })))
        })
        .await
    }
}
