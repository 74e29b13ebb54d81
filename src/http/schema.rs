//! What the dialects' OpenAPI fragments and request types share: inferd's error body, the
//! schema of a text-or-texts field, and serde defaults.

use serde::Serialize;
use utoipa::{
    openapi::{
        schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Type},
        RefOr, Schema,
    },
    ToSchema,
};

/// inferd's own error body: a message and a stable code (the README lists the codes).
#[derive(Serialize, ToSchema)]
pub struct ErrorResponse {
    pub error: String,
    pub code: String,
}

/// The OpenAPI view of `inputs`: one non-empty text or a non-empty list of them. Requests keep
/// a `serde_json::Value` so every wrong shape gets a precise message.
pub fn texts_schema() -> RefOr<Schema> {
    one_of_texts(
        Vec::new(),
        "One non-empty text or a non-empty list of them.",
    )
}

/// A `oneOf` of a non-empty string, a non-empty list of them, and `more`.
pub fn one_of_texts(more: Vec<RefOr<Schema>>, description: &str) -> RefOr<Schema> {
    let text = || {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
    };
    let mut schema = OneOfBuilder::new()
        .item(text())
        .item(ArrayBuilder::new().items(text()).min_items(Some(1)));
    for item in more {
        schema = schema.item(item);
    }
    schema.description(Some(description)).into()
}

/// `#[serde(default = "yes")]`: options that are on unless the request says otherwise.
pub fn yes() -> bool {
    true
}
