output "dataset" {
  description = "The BigQuery dataset of the warehouse."
  value       = google_bigquery_dataset.warehouse.dataset_id
}

output "warehouse_url" {
  description = "Where the job writes the warehouse."
  value       = local.warehouse_url
}

output "image" {
  description = "The image to build and push (docker build -f pipelines/ingest/Dockerfile .)."
  value       = local.image
}

output "worker_service_account" {
  description = "The Dataflow workers' identity."
  value       = google_service_account.worker.email
}

output "access_log_bucket" {
  description = "Where the buckets' usage logs and the exported audit logs are kept."
  value       = google_storage_bucket.access_logs.name
}
