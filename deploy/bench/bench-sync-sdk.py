#!/usr/bin/env python3
"""The baseline of deploy/bench/bench-sync.sh: a bucket-to-bucket sync written the way the OCI Python SDK
invites (Oracle's CLI has no bucket-to-bucket sync, and Debian's rclone 1.60 predates its Oracle
Object Storage backend). Both listings are read whole (the SDK's list_call_get_all_results), names
compared by size and MD5, what differs copied with CopyObject (server-side, its work request
polled) or streamed through (get_object, then put_object or the SDK's UploadManager in parts above
the threshold), with a thread pool of the same size as tributary's; what only the target has is
deleted.

  bench-sync-sdk.py --config FILE --endpoint URL --namespace NS SOURCE_BUCKET TARGET_BUCKET [--stream] [--connections N]
"""
import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import oci


def listing(client, namespace, bucket):
    objects = oci.pagination.list_call_get_all_results(
        client.list_objects, namespace, bucket, fields="name,size,md5,etag", limit=1000).data.objects
    return {item.name: item for item in objects}


def copy_server_side(client, namespace, source_bucket, target_bucket, name, region):
    details = oci.object_storage.models.CopyObjectDetails(
        source_object_name=name, destination_region=region, destination_namespace=namespace,
        destination_bucket=target_bucket, destination_object_name=name)
    work_id = client.copy_object(namespace, source_bucket, details).headers["opc-work-request-id"]
    while True:
        status = client.get_work_request(work_id).data.status
        if status == "COMPLETED":
            return
        if status in ("FAILED", "CANCELED"):
            raise RuntimeError(f"copy of {name}: work request {status}")
        time.sleep(0.2)


def copy_streamed(client, upload_manager, namespace, source_bucket, target_bucket, name, size, threshold):
    response = client.get_object(namespace, source_bucket, name)
    if size <= threshold:
        client.put_object(namespace, target_bucket, name, response.data.content)
    else:
        upload_manager.upload_stream(namespace, target_bucket, name, response.data.raw)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    parser.add_argument("--profile", default="DEFAULT")
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--stream", action="store_true", help="copy through this host instead of CopyObject")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--multipart-threshold", type=int, default=64 << 20)
    parser.add_argument("--part-size", type=int, default=16 << 20)
    parser.add_argument("source")
    parser.add_argument("target")
    arguments = parser.parse_args()

    config = oci.config.from_file(arguments.config, arguments.profile)
    client = oci.object_storage.ObjectStorageClient(config, service_endpoint=arguments.endpoint)
    client.base_client.session.adapters["http://"].poolmanager.connection_pool_kw["maxsize"] = arguments.connections
    upload_manager = oci.object_storage.UploadManager(client, allow_parallel_uploads=True, parallel_process_count=4)
    upload_manager.DEFAULT_PART_SIZE = arguments.part_size

    started = time.monotonic()
    source = listing(client, arguments.namespace, arguments.source)
    target = listing(client, arguments.namespace, arguments.target)
    to_copy = [item for name, item in source.items()
               if name not in target or target[name].size != item.size or target[name].md5 != item.md5]
    to_delete = [name for name in target if name not in source]

    def copy(item):
        if arguments.stream:
            copy_streamed(client, upload_manager, arguments.namespace, arguments.source, arguments.target, item.name, item.size,
                          arguments.multipart_threshold)
        else:
            copy_server_side(client, arguments.namespace, arguments.source, arguments.target, item.name, config["region"])

    with ThreadPoolExecutor(arguments.connections) as pool:
        list(pool.map(copy, to_copy))
        list(pool.map(lambda name: client.delete_object(arguments.namespace, arguments.target, name), to_delete))
    print(f"sdk: {len(source)} listed, {len(to_copy)} copied, {len(to_delete)} deleted in {time.monotonic() - started:.1f}s")


if __name__ == "__main__":
    sys.exit(main())
