//! The `object_store` configuration keys that `ObjectStoreX.Store` maps its options onto.
//! Kept here so a test proves every one of them parses for its provider.

/// S3 keys, as `ObjectStoreX.Store` sends them.
pub const S3_KEYS: &[&str] = &[
    "aws_bucket",
    "aws_region",
    "aws_endpoint",
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
    "aws_virtual_hosted_style_request",
    "aws_skip_signature",
    "aws_conditional_put",
    "aws_copy_if_not_exists",
    "aws_checksum_algorithm",
];

/// Google Cloud Storage keys.
pub const GCS_KEYS: &[&str] = &[
    "google_bucket",
    "google_service_account",
    "google_service_account_key",
    "google_application_credentials",
];

/// Azure Blob Storage keys.
pub const AZURE_KEYS: &[&str] = &[
    "azure_storage_account_name",
    "azure_container_name",
    "azure_storage_account_key",
    "azure_storage_sas_key",
    "azure_storage_token",
    "azure_storage_client_id",
    "azure_storage_client_secret",
    "azure_storage_tenant_id",
    "azure_storage_use_emulator",
    "azure_storage_endpoint",
];

/// HTTP client keys every network provider accepts.
pub const CLIENT_KEYS: &[&str] = &[
    "timeout",
    "connect_timeout",
    "read_timeout",
    "pool_idle_timeout",
    "proxy_url",
    "allow_http",
];

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::aws::AmazonS3ConfigKey;
    use object_store::azure::AzureConfigKey;
    use object_store::gcp::GoogleConfigKey;
    use object_store::ClientConfigKey;
    use std::str::FromStr;

    #[test]
    fn every_mapped_key_parses_for_its_provider() {
        for key in S3_KEYS.iter().chain(CLIENT_KEYS) {
            assert!(AmazonS3ConfigKey::from_str(key).is_ok(), "s3 {key}");
        }
        for key in GCS_KEYS.iter().chain(CLIENT_KEYS) {
            assert!(GoogleConfigKey::from_str(key).is_ok(), "gcs {key}");
        }
        for key in AZURE_KEYS.iter().chain(CLIENT_KEYS) {
            assert!(AzureConfigKey::from_str(key).is_ok(), "azure {key}");
        }
        for key in CLIENT_KEYS {
            assert!(ClientConfigKey::from_str(key).is_ok(), "http {key}");
        }
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(AmazonS3ConfigKey::from_str("aws_no_such_key").is_err());
    }
}
