# What watches and protects the warehouse: where each access is recorded, how long the records
# stay, and the grants an optional customer-managed key needs. docs/security.md says the same
# for people.

locals {
  access_log_bucket_name = var.access_log_bucket_name != null ? var.access_log_bucket_name : "${var.warehouse_bucket_name}-logs"
  audited_services       = var.data_access_audit_logs ? toset(["storage.googleapis.com", "bigquery.googleapis.com"]) : toset([])
}

# The hourly usage logs of the warehouse and staging buckets (who read or wrote which object,
# when, from where) and the exported audit logs. Object names are in them, and in some archives
# a name says whose images an object holds, so the bucket is as closed as the data.
resource "google_storage_bucket" "access_logs" {
  name                        = local.access_log_bucket_name
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  #checkov:skip=CKV_GCP_62:this is the access-log bucket: logging it into itself would loop; reads of it are in Cloud Audit Logs
  #checkov:skip=CKV_GCP_78:a retention policy protects the logs instead, and Cloud Storage refuses versioning beside one
  retention_policy {
    retention_period = var.access_log_retention_days * 86400
    is_locked        = var.lock_access_log_retention
  }
  lifecycle_rule {
    condition {
      age = var.access_log_retention_days
    }
    action {
      type = "Delete"
    }
  }
  dynamic "encryption" {
    for_each = local.kms_keys
    content {
      default_kms_key_name = encryption.value
    }
  }
  depends_on = [google_kms_crypto_key_iam_member.agents]
}

# Cloud Storage delivers usage logs as this group; it can add objects, not read or delete them.
resource "google_storage_bucket_iam_member" "usage_log_delivery" {
  bucket = google_storage_bucket.access_logs.name
  role   = "roles/storage.objectCreator"
  member = "group:cloud-storage-analytics@google.com"
}

# Data access audit logs: each read and write of an object or a table, by whom. They are off by
# default for Cloud Storage. Each resource is authoritative for its service's audit settings.
resource "google_project_iam_audit_config" "data_access" {
  for_each = local.audited_services
  project  = var.project_id
  service  = each.value
  audit_log_config {
    log_type = "ADMIN_READ"
  }
  audit_log_config {
    log_type = "DATA_READ"
  }
  audit_log_config {
    log_type = "DATA_WRITE"
  }
}

# Cloud Logging keeps data access logs for 30 days; this copy stays as long as the usage logs.
# The log bucket's own traffic is left out, or each delivery would be logged and delivered again.
resource "google_logging_project_sink" "audit" {
  name        = "dicomwarehouse-audit"
  project     = var.project_id
  description = "Audit logs of Cloud Storage and BigQuery, kept in the dicomwarehouse log bucket."
  destination = "storage.googleapis.com/${google_storage_bucket.access_logs.name}"
  filter = join(" AND ", [
    "logName:\"cloudaudit.googleapis.com\"",
    "protoPayload.serviceName=(\"storage.googleapis.com\" OR \"bigquery.googleapis.com\")",
    "NOT resource.labels.bucket_name=\"${google_storage_bucket.access_logs.name}\"",
  ])
  unique_writer_identity = true
  #checkov:skip=CKV2_GCP_4:a Bucket Lock cannot be undone, so it is opt-in: set lock_access_log_retention once the retention is agreed
}

resource "google_storage_bucket_iam_member" "audit_sink_writer" {
  bucket = google_storage_bucket.access_logs.name
  role   = "roles/storage.objectCreator"
  member = google_logging_project_sink.audit.writer_identity
}

# With a customer-managed key, the service agents that encrypt and decrypt on the project's
# behalf must be allowed to use it: Cloud Storage, Artifact Registry, and for the job's own
# state Dataflow and Compute Engine; BigQuery uses the dataset's key.
data "google_project" "this" {
  project_id = var.project_id
}

data "google_storage_project_service_account" "this" {
  count   = length(local.kms_keys)
  project = var.project_id
}

data "google_bigquery_default_service_account" "this" {
  count   = length(local.dataset_kms_keys)
  project = var.project_id
}

locals {
  project_number = data.google_project.this.number
  regional_key_agents = {
    storage           = one(data.google_storage_project_service_account.this[*].email_address)
    artifact_registry = "service-${local.project_number}@gcp-sa-artifactregistry.iam.gserviceaccount.com"
    dataflow          = "service-${local.project_number}@dataflow-service-producer-prod.iam.gserviceaccount.com"
    compute           = "service-${local.project_number}@compute-system.iam.gserviceaccount.com"
  }
  kms_grants = merge(
    { for name, email in local.regional_key_agents : name => { key = var.kms_key_name, email = email } if var.kms_key_name != null },
    { for key in local.dataset_kms_keys : "bigquery" => { key = key, email = one(data.google_bigquery_default_service_account.this[*].email) } },
  )
}

resource "google_kms_crypto_key_iam_member" "agents" {
  for_each      = local.kms_grants
  crypto_key_id = each.value.key
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = "serviceAccount:${each.value.email}"
}
