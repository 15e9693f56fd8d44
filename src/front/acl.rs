//! ACLs: sealgate grants access per bucket in its own configuration
//! (`auth::Grants`), not by S3 ACLs. Tools read ACLs to decide what they may
//! do, so reads answer what holds — the owner has FULL_CONTROL, nobody else
//! has anything — and changes are refused with a clear error instead of
//! being ignored.

use super::Gateway;
use super::error::{FrontError, FrontResult, upstream_bucket, upstream_object};
use s3s::dto::*;
use s3s::{S3Request, S3Response};

/// The owner sealgate reports (as in ListBuckets and listings).
pub(super) fn owner() -> Owner {
    Owner {
        display_name: Some("sealgate".into()),
        id: Some("sealgate".into()),
    }
}

/// The one grant that holds: the owner, FULL_CONTROL.
fn owner_full_control() -> Grants {
    vec![Grant {
        grantee: Some(Grantee {
            type_: Type::from_static(Type::CANONICAL_USER),
            id: owner().id,
            display_name: owner().display_name,
            email_address: None,
            uri: None,
        }),
        permission: Some(Permission::from_static(Permission::FULL_CONTROL)),
    }]
}

pub async fn get_bucket_acl(
    gw: &Gateway,
    req: S3Request<GetBucketAclInput>,
) -> FrontResult<S3Response<GetBucketAclOutput>> {
    gw.upstream
        .head_bucket(&req.input.bucket)
        .await
        .map_err(upstream_bucket)?;
    Ok(S3Response::new(GetBucketAclOutput {
        owner: Some(owner()),
        grants: Some(owner_full_control()),
    }))
}

pub async fn get_object_acl(
    gw: &Gateway,
    req: S3Request<GetObjectAclInput>,
) -> FrontResult<S3Response<GetObjectAclOutput>> {
    let i = req.input;
    if i.version_id.is_some() {
        return Err(FrontError::NotImplemented(
            "reading a specific version is not supported".into(),
        ));
    }
    gw.upstream
        .head_object(&i.bucket, &i.key)
        .await
        .map_err(upstream_object)?;
    Ok(S3Response::new(GetObjectAclOutput {
        owner: Some(owner()),
        grants: Some(owner_full_control()),
        ..Default::default()
    }))
}

/// PutBucketAcl and PutObjectAcl.
pub fn refuse_acl_change() -> FrontError {
    FrontError::NotImplemented("sealgate does not apply S3 ACLs: access is granted per bucket and access key in its configuration (the buckets of each [[credentials]] entry)".into())
}
