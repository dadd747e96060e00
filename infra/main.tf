# The GCP side of dicomwarehouse: a BigQuery dataset, the warehouse and staging buckets, a
# least-privilege worker service account, an Artifact Registry repository for the ingest image,
# the Flex Template spec, and a Cloud Scheduler job that launches an incremental run.
# security.tf holds what watches and protects them: access logs, audit logs, the optional
# customer-managed key's grants. The data is DICOM headers, i.e. patient data: nothing here is
# public, every bucket is reachable only through IAM, and every read leaves a trace.

locals {
  image         = "${var.region}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.images.repository_id}/ingest:${var.template_image_tag}"
  template_path = "templates/ingest.json"
  warehouse_url = "gs://${google_storage_bucket.warehouse.name}/warehouse"
  # Customer-managed keys, each a list of none or one for the dynamic blocks that apply them. A
  # key must sit in the location of what it encrypts, so the dataset may need a key of its own.
  kms_keys             = var.kms_key_name == null ? [] : [var.kms_key_name]
  dataset_kms_key_name = var.dataset_kms_key_name != null ? var.dataset_kms_key_name : var.kms_key_name
  dataset_kms_keys     = local.dataset_kms_key_name == null ? [] : [local.dataset_kms_key_name]
}

resource "google_bigquery_dataset" "warehouse" {
  dataset_id  = var.dataset_id
  location    = var.dataset_location
  description = "DICOM metadata warehouse built by dicomwarehouse."
  # Google-managed keys unless a key is given; tables the publish creates inherit this default.
  #checkov:skip=CKV_GCP_81:CMEK is opt-in (var.kms_key_name); without it Google-managed keys encrypt the data
  dynamic "default_encryption_configuration" {
    for_each = local.dataset_kms_keys
    content {
      kms_key_name = default_encryption_configuration.value
    }
  }
  depends_on = [google_kms_crypto_key_iam_member.agents]
}

# dicom_metadata's schema is the union of what each run meets, so its loads create and widen it;
# the two fixed tables take their schemas from schemas/, generated from the code.
resource "google_bigquery_table" "dicom_elements" {
  dataset_id          = google_bigquery_dataset.warehouse.dataset_id
  table_id            = "dicom_elements_history"
  description         = "Every data element of every object at every depth, one row per occurrence, all runs."
  schema              = file("${path.module}/../schemas/dicom_elements.json")
  clustering          = ["tag", "source_url"]
  deletion_protection = true
  #checkov:skip=CKV_GCP_80:CMEK is opt-in (var.kms_key_name); without it Google-managed keys encrypt the data
  dynamic "encryption_configuration" {
    for_each = local.dataset_kms_keys
    content {
      kms_key_name = encryption_configuration.value
    }
  }
  # as `dicomwarehouse publish bigquery` creates it: a run's rows in the partition of its day
  # (no time column: ingestion-time partitions named by the publish), replaced whole on reload
  time_partitioning {
    type = "DAY"
  }
}

resource "google_bigquery_table" "ingest_errors" {
  dataset_id          = google_bigquery_dataset.warehouse.dataset_id
  table_id            = "ingest_errors_history"
  description         = "Objects that yielded no row, with the stage and reason, all runs."
  schema              = file("${path.module}/../schemas/ingest_errors.json")
  clustering          = ["stage", "error_type"]
  deletion_protection = true
  #checkov:skip=CKV_GCP_80:CMEK is opt-in (var.kms_key_name); without it Google-managed keys encrypt the data
  dynamic "encryption_configuration" {
    for_each = local.dataset_kms_keys
    content {
      kms_key_name = encryption_configuration.value
    }
  }
  time_partitioning {
    type  = "DAY"
    field = "ingested_at"
  }
}

# Versioned: an overwritten or deleted ledger, run record or Parquet file can be restored. Old
# versions hold patient data too, so they go after noncurrent_version_retention_days (an
# erasure request is complete once they have).
resource "google_storage_bucket" "warehouse" {
  name                        = var.warehouse_bucket_name
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  logging {
    log_bucket        = google_storage_bucket.access_logs.name
    log_object_prefix = "usage/${var.warehouse_bucket_name}"
  }
  versioning {
    enabled = true
  }
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.noncurrent_version_retention_days
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

# Dataflow's staging and temp files (which hold rows in flight) and the template spec: not
# versioned, since everything in it is either rewritten by Terraform or short-lived by design.
resource "google_storage_bucket" "staging" {
  name                        = var.staging_bucket_name
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  #checkov:skip=CKV_GCP_78:temp files are deleted after 7 days; versions would keep them, and the template spec is Terraform's
  logging {
    log_bucket        = google_storage_bucket.access_logs.name
    log_object_prefix = "usage/${var.staging_bucket_name}"
  }
  dynamic "encryption" {
    for_each = local.kms_keys
    content {
      default_kms_key_name = encryption.value
    }
  }
  lifecycle_rule {
    condition {
      age            = 7
      matches_prefix = ["temp/", "staging/"]
    }
    action {
      type = "Delete"
    }
  }
  depends_on = [google_kms_crypto_key_iam_member.agents]
}

resource "google_artifact_registry_repository" "images" {
  location      = var.region
  repository_id = "dicomwarehouse"
  description   = "Images of the dicomwarehouse Dataflow jobs."
  format        = "DOCKER"
  #checkov:skip=CKV_GCP_84:CMEK is opt-in (var.kms_key_name); the image holds code, no patient data
  kms_key_name = var.kms_key_name
  depends_on   = [google_kms_crypto_key_iam_member.agents]
}

# The Flex Template spec: the image plus the parameters the launcher accepts.
resource "google_storage_bucket_object" "template_spec" {
  bucket = google_storage_bucket.staging.name
  name   = local.template_path
  content = jsonencode({
    image    = local.image
    sdkInfo  = { language = "PYTHON" }
    metadata = jsondecode(file("${path.module}/../pipelines/ingest/metadata.json"))
  })
}

# The identity of the Dataflow workers: reads the sources, writes the warehouse and dataset.
resource "google_service_account" "worker" {
  account_id   = "dicomwarehouse-worker"
  display_name = "dicomwarehouse ingest workers"
}

resource "google_project_iam_member" "worker_dataflow" {
  project = var.project_id
  role    = "roles/dataflow.worker"
  member  = "serviceAccount:${google_service_account.worker.email}"
}

resource "google_project_iam_member" "worker_bigquery_jobs" {
  project = var.project_id
  role    = "roles/bigquery.jobUser"
  member  = "serviceAccount:${google_service_account.worker.email}"
}

resource "google_bigquery_dataset_iam_member" "worker_dataset" {
  dataset_id = google_bigquery_dataset.warehouse.dataset_id
  role       = "roles/bigquery.dataEditor"
  member     = "serviceAccount:${google_service_account.worker.email}"
}

resource "google_storage_bucket_iam_member" "worker_sources" {
  for_each = toset(var.source_buckets)
  bucket   = each.value
  role     = "roles/storage.objectViewer"
  member   = "serviceAccount:${google_service_account.worker.email}"
}

resource "google_storage_bucket_iam_member" "worker_warehouse" {
  bucket = google_storage_bucket.warehouse.name
  role   = "roles/storage.objectAdmin"
  member = "serviceAccount:${google_service_account.worker.email}"
}

resource "google_storage_bucket_iam_member" "worker_staging" {
  bucket = google_storage_bucket.staging.name
  role   = "roles/storage.objectAdmin"
  member = "serviceAccount:${google_service_account.worker.email}"
}

resource "google_artifact_registry_repository_iam_member" "worker_images" {
  location   = google_artifact_registry_repository.images.location
  repository = google_artifact_registry_repository.images.name
  role       = "roles/artifactregistry.reader"
  member     = "serviceAccount:${google_service_account.worker.email}"
}

# The identity Cloud Scheduler uses to launch the template. It can create a Dataflow job (no
# project-level role that manages or impersonates service accounts: roles/dataflow.developer
# is one, since it also cancels, updates and snapshots every job of the project), act as the
# worker account alone, and read the template spec.
resource "google_service_account" "scheduler" {
  account_id   = "dicomwarehouse-scheduler"
  display_name = "dicomwarehouse schedule"
}

# Dataflow has no per-job or per-template IAM: creating a job is a project permission.
resource "google_project_iam_custom_role" "launcher" {
  project     = var.project_id
  role_id     = "dicomwarehouseLauncher"
  title       = "dicomwarehouse template launcher"
  description = "Launch the dicomwarehouse Flex Template and see the jobs it made; nothing else."
  permissions = ["dataflow.jobs.create", "dataflow.jobs.get", "resourcemanager.projects.get"]
}

resource "google_project_iam_member" "scheduler_launches" {
  project = var.project_id
  role    = google_project_iam_custom_role.launcher.name
  member  = "serviceAccount:${google_service_account.scheduler.email}"
}

# Acting as the worker is granted on the worker account only, never at project level.
resource "google_service_account_iam_member" "scheduler_acts_as_worker" {
  service_account_id = google_service_account.worker.name
  role               = "roles/iam.serviceAccountUser"
  member             = "serviceAccount:${google_service_account.scheduler.email}"
}

resource "google_storage_bucket_iam_member" "scheduler_reads_template" {
  bucket = google_storage_bucket.staging.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.scheduler.email}"
}

resource "google_cloud_scheduler_job" "incremental_ingest" {
  name        = "dicomwarehouse-incremental-ingest"
  description = "Launches the dicomwarehouse ingest template with --incremental."
  schedule    = var.schedule
  time_zone   = var.time_zone
  region      = var.region

  http_target {
    http_method = "POST"
    uri         = "https://dataflow.googleapis.com/v1b3/projects/${var.project_id}/locations/${var.region}/flexTemplates:launch"
    headers = {
      "Content-Type" = "application/json"
    }
    body = base64encode(jsonencode({
      launchParameter = {
        jobName              = "dicomwarehouse-incremental-ingest"
        containerSpecGcsPath = "gs://${google_storage_bucket.staging.name}/${local.template_path}"
        parameters = {
          sources      = join(",", var.job_sources)
          warehouse    = local.warehouse_url
          incremental  = "true"
          full_listing = "true"
          # the job publishes to the dataset once its run has committed
          bigquery_dataset  = "${var.project_id}.${google_bigquery_dataset.warehouse.dataset_id}"
          bigquery_location = var.dataset_location
        }
        # with a customer-managed key, Dataflow's own state (shuffle, disks) uses it too; the
        # for expression drops the key when there is none (a map, so no type to reconcile)
        environment = merge({
          serviceAccountEmail = google_service_account.worker.email
          tempLocation        = "gs://${google_storage_bucket.staging.name}/temp"
          stagingLocation     = "gs://${google_storage_bucket.staging.name}/staging"
          maxWorkers          = var.max_workers
          sdkContainerImage   = local.image
        }, { for name, key in { kmsKeyName = var.kms_key_name } : name => key if key != null })
      }
    }))
    oauth_token {
      service_account_email = google_service_account.scheduler.email
    }
  }
}
