//! An optional JSON request body: absent (no body, no `Content-Type`) is
//! `None`; present, it must be `application/json` and well formed, or the
//! request is refused as any other JSON body is (415, 400). poem-openapi's
//! `Json<Option<T>>` still demands a `Content-Type` on a bodiless request.
//!
//! A leaf: it imports no sibling.

use poem::{Request, RequestBody};
use poem_openapi::error::{ContentTypeError, ParseRequestPayloadError};
use poem_openapi::payload::{Json, Payload as _};
use poem_openapi::registry::{MetaMediaType, MetaRequest, Registry};
use poem_openapi::types::ParseFromJSON;
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};

/// A JSON body the client may leave out.
#[derive(Debug)]
pub struct OptionalJson<T>(pub Option<T>);

impl<'a, T: ParseFromJSON + Send> ApiExtractor<'a> for OptionalJson<T> {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];

    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        <Json<T> as poem_openapi::payload::Payload>::register(registry);
    }

    fn request_meta() -> Option<MetaRequest> {
        Some(MetaRequest {
            description: None,
            content: vec![MetaMediaType {
                content_type: <Json<T> as poem_openapi::payload::Payload>::CONTENT_TYPE,
                schema: <Json<T> as poem_openapi::payload::Payload>::schema_ref(),
            }],
            required: false,
        })
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        let data = <Vec<u8> as poem::FromRequest>::from_request(request, body).await?;
        match request.content_type() {
            None if data.is_empty() => return Ok(Self(None)),
            None => return Err(ContentTypeError::ExpectContentType.into()),
            Some(content_type) if !Json::<T>::check_content_type(content_type) => {
                return Err(ContentTypeError::NotSupported {
                    content_type: content_type.to_owned(),
                }
                .into());
            }
            Some(_) if data.is_empty() => return Ok(Self(None)),
            Some(_) => {}
        }
        let value: serde_json::Value =
            serde_json::from_slice(&data).map_err(|err| ParseRequestPayloadError {
                reason: err.to_string(),
            })?;
        let value = T::parse_from_json(Some(value)).map_err(|err| ParseRequestPayloadError {
            reason: err.into_message(),
        })?;
        Ok(Self(Some(value)))
    }
}
