//! Object keys the AWS SDK for Rust would refuse to send.
//!
//! S3 accepts any UTF-8 key of 1 to 1,024 bytes, a single space included,
//! but the SDK's endpoint-parameter step (`…EndpointParamsInterceptor`)
//! takes a key that is empty *after trimming whitespace* for a missing one
//! and fails the call before anything is sent (`ConstructionFailure:
//! MissingField key`). The key is only an endpoint-rule input there; the
//! request path is built later, from the input, by the serializer.
//!
//! So sealgate hands the SDK such a key in a placeholder form
//! ([`key`]) that passes that step, and [`RestoreKeys`], an interceptor on
//! the provider client, puts the real key back into the operation's input
//! before serialization: the request the provider gets names the real key.
//! The placeholder is a reversible encoding applied to every key that needs
//! it and to every key that merely starts like one, so no two keys meet.

use aws_sdk_s3::config::interceptors::BeforeSerializationInterceptorContextMut;
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use std::borrow::Cow;

/// Starts every placeholder (control characters: no key a client would
/// pick, and escaped anyway when one does).
const MARK: &str = "\u{1}sealgate-key\u{1}";

/// The form of `k` to give the SDK: `k` itself, or a placeholder for a key
/// the SDK would refuse (whitespace only), restored by [`RestoreKeys`].
pub fn key(k: &str) -> Cow<'_, str> {
    if k.trim().is_empty() || k.starts_with(MARK) {
        Cow::Owned(format!("{MARK}{}", hex::encode(k)))
    } else {
        Cow::Borrowed(k)
    }
}

/// The real key behind a placeholder, if `k` is one.
fn restored(k: &str) -> Option<String> {
    let h = k.strip_prefix(MARK)?;
    String::from_utf8(hex::decode(h).ok()?).ok()
}

fn restore(k: &mut Option<String>) {
    if let Some(real) = k.as_deref().and_then(restored) {
        *k = Some(real);
    }
}

/// The interceptor that turns placeholders back into keys before the
/// request is serialized (installed on the provider client).
#[derive(Debug, Default, Clone, Copy)]
pub struct RestoreKeys;

impl Intercept for RestoreKeys {
    fn name(&self) -> &'static str {
        "sealgate-restore-keys"
    }

    fn modify_before_serialization(
        &self,
        ctx: &mut BeforeSerializationInterceptorContextMut<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        use aws_sdk_s3::operation as op;
        let input = ctx.input_mut();
        macro_rules! restore_key_of {
            ($($t:ty),* $(,)?) => {
                $(
                    if let Some(i) = input.downcast_mut::<$t>() {
                        restore(&mut i.key);
                        return Ok(());
                    }
                )*
            };
        }
        restore_key_of!(
            op::put_object::PutObjectInput,
            op::get_object::GetObjectInput,
            op::head_object::HeadObjectInput,
            op::delete_object::DeleteObjectInput,
            op::copy_object::CopyObjectInput,
            op::create_multipart_upload::CreateMultipartUploadInput,
            op::upload_part::UploadPartInput,
            op::upload_part_copy::UploadPartCopyInput,
            op::complete_multipart_upload::CompleteMultipartUploadInput,
            op::abort_multipart_upload::AbortMultipartUploadInput,
            op::list_parts::ListPartsInput,
            op::get_object_acl::GetObjectAclInput,
            op::put_object_acl::PutObjectAclInput,
            op::get_object_attributes::GetObjectAttributesInput,
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_round_trip_and_never_meet_a_real_key() {
        for k in [
            " ",
            "\t",
            "  ",
            "\u{3000}",
            "",
            "a",
            " a ",
            MARK,
            "\u{1}sealgate-key\u{1}20",
        ] {
            let p = key(k);
            assert!(!p.trim().is_empty(), "{k:?}");
            let back = restored(&p).unwrap_or_else(|| p.clone().into_owned());
            assert_eq!(back, k, "{k:?}");
        }
        assert!(matches!(key("ordinary/key"), Cow::Borrowed(_)));
        // A key that looks like a placeholder is itself encoded.
        let lookalike = format!("{MARK}{}", hex::encode(" "));
        assert_ne!(key(&lookalike), lookalike);
        assert_eq!(
            restored(&key(&lookalike)).as_deref(),
            Some(lookalike.as_str())
        );
    }
}
