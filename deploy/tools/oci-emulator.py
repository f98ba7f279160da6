#!/usr/bin/env python3
"""An OCI Object Storage emulator for development and tests, on loopback.

It serves the calls Tributary makes (GetNamespace, PutObject, GetObject with Range and if-match,
HeadObject, DeleteObject, ListObjects with pagination and fields, the multipart calls and
ListMultipartUploads, CopyObject with its work requests), keeps the
objects on disk, and checks every request's signature with the API key's public key the way OCI
does: a missing or wrong signature, or a Date more than 5 minutes off, is 401 NotAuthenticated; a
PUT without Content-Length is 411. Faults can be switched on while it runs (POST /_emulator/faults):
a share of requests answered 503 or 429, slow answers, connections dropped in the middle of a body,
the requests for one path failed or held.

Usage: oci-emulator.py --oci-config FILE [--profile NAME] [--namespace NS] [--bucket NAME ...]
                       [--data DIR] [--port N]
It prints "listening on http://127.0.0.1:PORT" once ready. Needs python3-cryptography.
"""
import argparse
import base64
import bisect
import configparser
import email.utils
import hashlib
import json
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

MAX_SKEW_SECONDS = 300
OBJECT_PATH = re.compile(r"^/n/([^/]+)/b/([^/]+)/(o|u)(?:/(.+))?$")
COPY_PATH = re.compile(r"^/n/([^/]+)/b/([^/]+)/actions/copyObject$")
WORK_REQUEST_PATH = re.compile(r"^/workRequests/([^/]+)(/errors)?$")


class ServiceError(Exception):
    def __init__(self, status, code, message):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class Faults:
    """What goes wrong, and how often. Deterministic for a given seed."""

    def __init__(self):
        self.lock = threading.Lock()
        self.configure({})

    def configure(self, settings):
        with self.lock:
            self.error_rate = float(settings.get("error_rate", 0))
            self.statuses = list(settings.get("statuses", [503, 429]))
            self.slow_rate = float(settings.get("slow_rate", 0))
            self.delay_ms = int(settings.get("delay_ms", 0))
            self.drop_rate = float(settings.get("drop_rate", 0))
            # Fail every request whose path contains this text (to fail one upload on purpose).
            self.fail_path = settings.get("fail_path")
            # Hold every request whose path contains this text until the setting is changed (at most
            # a minute), so a test can kill a client that is certainly still in the middle of its work.
            self.hold_path = settings.get("hold_path")
            # A share of CopyObject work requests end FAILED; each takes this long.
            self.copy_fail_rate = float(settings.get("copy_fail_rate", 0))
            self.copy_delay_ms = int(settings.get("copy_delay_ms", 50))
            self.random = random.Random(settings.get("seed", 1))

    def draw(self):
        with self.lock:
            return (self.random.random(), self.random.random(), self.random.random(),
                    self.random.choice(self.statuses) if self.statuses else 503)

    def describe(self):
        with self.lock:
            return {"error_rate": self.error_rate, "statuses": self.statuses, "slow_rate": self.slow_rate,
                    "delay_ms": self.delay_ms, "drop_rate": self.drop_rate, "fail_path": self.fail_path,
                    "hold_path": self.hold_path,
                    "copy_fail_rate": self.copy_fail_rate, "copy_delay_ms": self.copy_delay_ms}


class Store:
    """Objects on disk (one file each, written to a temporary name and renamed), listing in memory."""

    def __init__(self, root, namespace, buckets):
        self.root, self.namespace = root, namespace
        self.lock = threading.Lock()
        self.objects = {bucket: {} for bucket in buckets}  # name -> (size, md5 base64, etag, time modified)
        self.sorted_names = {}  # bucket -> its names sorted (code point order is UTF-8 byte order), until it changes
        self.work_requests = {}  # id -> {"status", "errors"}
        self.uploads = {}  # upload id -> {"bucket", "object", "parts": {num: (path, etag, size)}}
        os.makedirs(os.path.join(root, ".tmp"), exist_ok=True)
        for bucket in buckets:
            os.makedirs(os.path.join(root, bucket), exist_ok=True)

    def bucket(self, namespace, bucket):
        if namespace != self.namespace:
            raise ServiceError(404, "NamespaceNotFound", f"namespace {namespace} does not exist")
        if bucket not in self.objects:
            raise ServiceError(404, "BucketNotFound", f"bucket {bucket} does not exist in namespace {namespace}")
        return self.objects[bucket]

    def path(self, bucket, name):
        return os.path.join(self.root, bucket, name.encode("utf-8").hex())

    def temporary(self):
        return tempfile.NamedTemporaryFile(dir=os.path.join(self.root, ".tmp"), delete=False)

    def commit(self, bucket, name, temporary_path, size, md5, if_none_match):
        with self.lock:
            objects = self.objects[bucket]
            if if_none_match and name in objects:
                os.unlink(temporary_path)
                raise ServiceError(412, "IfNoneMatchFailed", f"object {name} already exists")
            os.replace(temporary_path, self.path(bucket, name))
            etag = str(uuid.uuid4())
            if name not in objects:
                self.sorted_names.pop(bucket, None)
            objects[name] = (size, md5, etag, time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()))
            return etag

    def names(self, bucket):
        """The bucket's names in listing order (the caller holds the lock)."""
        if bucket not in self.sorted_names:
            self.sorted_names[bucket] = sorted(self.objects[bucket])
        return self.sorted_names[bucket]

    def populate(self, bucket, prefix, start, count, size, seed, delete=False):
        """Objects `<prefix><index>` for `count` indexes from `start`, of `size` pseudo-random bytes (from `seed` and the
        index), written (or deleted) directly: a large bucket for a benchmark without a request per object."""
        for index in range(start, start + count):
            if delete:
                with self.lock:
                    if self.objects[bucket].pop(f"{prefix}{index:08d}", None) is not None:
                        os.unlink(self.path(bucket, f"{prefix}{index:08d}"))
                        self.sorted_names.pop(bucket, None)
                continue
            content = random.Random(f"{seed}/{index}").randbytes(size)
            with self.temporary() as temporary:
                temporary.write(content)
            self.commit(bucket, f"{prefix}{index:08d}", temporary.name, size, base64.b64encode(hashlib.md5(content).digest()).decode(), False)


def read_public_key(config_file, profile):
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str
    with open(config_file) as handle:
        parser.read_file(handle)
    section = parser[profile] if profile != "DEFAULT" else parser.defaults()
    key_file = os.path.expanduser(section["key_file"])
    if not os.path.isabs(key_file):
        key_file = os.path.join(os.path.dirname(os.path.abspath(config_file)), key_file)
    passphrase = section.get("pass_phrase")
    with open(key_file, "rb") as handle:
        private = serialization.load_pem_private_key(handle.read(), passphrase.encode() if passphrase else None)
    key_id = f"{section['tenancy']}/{section['user']}/{section['fingerprint'].lower()}"
    return key_id, private.public_key()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "OCIEmulator/1"

    def log_message(self, format, *args):  # quiet: tests read stdout
        if self.server.verbose:
            super().log_message(format, *args)

    def do_GET(self): self.handle_call()
    def do_HEAD(self): self.handle_call()
    def do_PUT(self): self.handle_call()
    def do_POST(self): self.handle_call()
    def do_DELETE(self): self.handle_call()

    # -- plumbing

    def handle_call(self):
        self.request_id = uuid.uuid4().hex
        self.body_consumed = False
        server = self.server
        with server.stats_lock:
            server.stats["requests"] += 1
        # How many calls are served at once, at most: a client's parallel transfers show here.
        served = not self.path.startswith("/_emulator/")
        if served:
            with server.stats_lock:
                server.in_flight += 1
                server.stats["max_in_flight"] = max(server.stats["max_in_flight"], server.in_flight)
        try:
            if not served:
                return self.control()
            if self.command == "PUT" and self.headers.get("content-length") is None:
                self.close_connection = True
                raise ServiceError(411, "LengthRequired", "Content-Length is required")
            error_draw, slow_draw, drop_draw, status = server.faults.draw()
            faults = server.faults
            if faults.fail_path and faults.fail_path in self.path:
                self.count("injected_errors")
                raise ServiceError(503, "ServiceUnavailable", "injected failure")
            if faults.hold_path and faults.hold_path in self.path:
                held_until = time.monotonic() + 60
                while faults.hold_path and faults.hold_path in self.path and time.monotonic() < held_until:
                    time.sleep(0.05)
            if slow_draw < faults.slow_rate:
                time.sleep(faults.delay_ms / 1000)
            self.authenticate()
            if error_draw < faults.error_rate:
                self.count("injected_errors")
                raise ServiceError(status, "TooManyRequests" if status == 429 else "ServiceUnavailable", "injected fault")
            self.drop = drop_draw < faults.drop_rate
            self.route()
        except ServiceError as error:
            self.discard_body()
            self.send_json(error.status, {"code": error.code, "message": error.message})
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            if served:
                with server.stats_lock:
                    server.in_flight -= 1

    def count(self, name):
        with self.server.stats_lock:
            self.server.stats[name] = self.server.stats.get(name, 0) + 1

    def control(self):
        if self.path == "/_emulator/faults" and self.command == "POST":
            self.server.faults.configure(json.loads(self.read_body() or b"{}"))
            return self.send_json(200, self.server.faults.describe())
        if self.path == "/_emulator/populate" and self.command == "POST":
            request = json.loads(self.read_body() or b"{}")
            bucket = request["bucket"]
            self.server.store.bucket(self.server.store.namespace, bucket)
            self.server.store.populate(bucket, request.get("prefix", ""), int(request.get("start", 0)), int(request["count"]),
                                       int(request.get("size", 1024)), request.get("seed", 0), bool(request.get("delete", False)))
            return self.send_json(200, {"bucket": bucket, "objects": len(self.server.store.objects[bucket])})
        if self.path == "/_emulator/stats":
            with self.server.stats_lock:
                stats = dict(self.server.stats)
            with self.server.store.lock:
                stats["open_uploads"] = len(self.server.store.uploads)
            return self.send_json(200, stats)
        raise ServiceError(404, "NotFound", "unknown emulator control path")

    def read_body(self):
        length = int(self.headers.get("content-length") or 0)
        self.body_consumed = True
        return self.rfile.read(length) if length else b""

    def discard_body(self):
        if self.body_consumed or self.command in ("GET", "HEAD", "DELETE"):
            return
        self.body_consumed = True
        remaining = int(self.headers.get("content-length") or 0)
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, 1 << 20))
            if not chunk:
                break
            remaining -= len(chunk)

    def send_json(self, status, value, headers=()):
        body = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("opc-request-id", self.request_id)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        for name, header in headers:
            self.send_header(name, header)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_empty(self, status, headers=()):
        self.send_response(status)
        self.send_header("opc-request-id", self.request_id)
        self.send_header("content-length", "0")
        for name, header in headers:
            self.send_header(name, header)
        self.end_headers()

    # -- authentication, as OCI does it

    def authenticate(self):
        authorization = self.headers.get("authorization")
        if not authorization or not authorization.startswith("Signature "):
            raise ServiceError(401, "NotAuthenticated", "the required information to complete authentication was not provided")
        fields = dict(re.findall(r'(\w+)="([^"]*)"', authorization))
        if fields.get("algorithm") != "rsa-sha256" or fields.get("version", "1") != "1":
            raise ServiceError(401, "NotAuthenticated", "unsupported signature algorithm or version")
        if fields.get("keyId") != self.server.key_id:
            raise ServiceError(401, "NotAuthenticated", "unknown keyId")
        signed = fields.get("headers", "date").split(" ")
        required = ["date", "(request-target)", "host"]
        if self.signs_body():
            required += ["content-length", "content-type", "x-content-sha256"]
        missing = [name for name in required if name not in signed]
        if missing:
            raise ServiceError(401, "NotAuthenticated", f"required headers not signed: {' '.join(missing)}")
        date = self.headers.get("date") or self.headers.get("x-date")
        try:
            moment = email.utils.parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError):
            raise ServiceError(401, "NotAuthenticated", "the Date header is missing or malformed")
        if abs(time.time() - moment) > MAX_SKEW_SECONDS:
            raise ServiceError(401, "NotAuthenticated", "the Date header is more than 5 minutes off the service's clock")
        lines = []
        for name in signed:
            if name == "(request-target)":
                lines.append(f"(request-target): {self.command.lower()} {self.path}")
            else:
                value = self.headers.get(name)
                if value is None:
                    raise ServiceError(401, "NotAuthenticated", f"signed header {name} is absent")
                lines.append(f"{name}: {value}")
        try:
            self.server.public_key.verify(base64.b64decode(fields.get("signature", "")), "\n".join(lines).encode(),
                                          padding.PKCS1v15(), hashes.SHA256())
        except (InvalidSignature, ValueError):
            self.count("rejected_signatures")
            raise ServiceError(401, "NotAuthenticated", "the signature does not match the request")

    def signs_body(self):
        if self.command == "POST":
            return True
        if self.command == "PUT":
            match = OBJECT_PATH.match(urllib.parse.urlsplit(self.path).path)
            # PutObject and UploadPart bodies may be streamed and are not signed.
            return not (match and match.group(4))
        return False

    def signed_body(self):
        body = self.read_body()
        expected = self.headers.get("x-content-sha256")
        if base64.b64encode(hashlib.sha256(body).digest()).decode() != expected:
            raise ServiceError(400, "InvalidParameter", "x-content-sha256 does not match the body")
        return body

    # -- routing

    def route(self):
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        copy = COPY_PATH.match(url.path)
        if copy and self.command == "POST":
            return self.copy_object(urllib.parse.unquote(copy.group(1)), urllib.parse.unquote(copy.group(2)))
        work = WORK_REQUEST_PATH.match(url.path)
        if work and self.command == "GET":
            return self.work_request(urllib.parse.unquote(work.group(1)), work.group(2) is not None)
        if url.path == "/n/" or url.path == "/n":
            if self.command != "GET":
                raise ServiceError(405, "MethodNotAllowed", "GetNamespace is GET")
            return self.send_json(200, self.server.store.namespace)
        match = OBJECT_PATH.match(url.path)
        if not match:
            raise ServiceError(404, "NotFound", f"no such API path {url.path}")
        namespace, bucket, kind, raw_name = match.groups()
        namespace, bucket = urllib.parse.unquote(namespace), urllib.parse.unquote(bucket)
        name = urllib.parse.unquote(raw_name) if raw_name else None
        store = self.server.store
        store.bucket(namespace, bucket)
        if kind == "o":
            if name is None:
                if self.command == "GET":
                    return self.list_objects(bucket, query)
            elif self.command == "PUT":
                return self.put_object(bucket, name)
            elif self.command in ("GET", "HEAD"):
                if self.command == "GET":
                    self.count("object_gets")
                return self.get_object(bucket, name)
            elif self.command == "DELETE":
                return self.delete_object(bucket, name)
        else:
            if name is None:
                if self.command == "POST":
                    return self.create_upload(bucket)
                if self.command == "GET":
                    return self.list_uploads(bucket)
            elif self.command == "PUT" and "uploadId" in query:
                return self.upload_part(bucket, name, query)
            elif self.command == "POST" and "uploadId" in query:
                return self.commit_upload(bucket, name, query)
            elif self.command == "DELETE" and "uploadId" in query:
                return self.abort_upload(bucket, name, query)
        raise ServiceError(405, "MethodNotAllowed", f"{self.command} is not supported on {url.path}")

    def receive_to_file(self):
        """Streams the request body to a temporary file; returns (path, size, md5 base64)."""
        length = int(self.headers["content-length"])
        digest = hashlib.md5()
        self.body_consumed = True
        with self.server.store.temporary() as handle:
            remaining = length
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 1 << 20))
                if not chunk:
                    os.unlink(handle.name)
                    self.close_connection = True
                    raise ConnectionResetError("body cut short")
                digest.update(chunk)
                handle.write(chunk)
                remaining -= len(chunk)
        md5 = base64.b64encode(digest.digest()).decode()
        claimed = self.headers.get("content-md5")
        if claimed is not None and claimed != md5:
            os.unlink(handle.name)
            raise ServiceError(400, "InvalidContentMD5", "Content-MD5 does not match the body")
        if self.drop:
            # The body arrived but the answer is lost: the client must retry, and the retry must be harmless.
            os.unlink(handle.name)
            self.count("dropped_connections")
            self.close_connection = True
            raise ConnectionResetError("injected drop")
        return handle.name, length, md5

    def put_object(self, bucket, name):
        path, size, md5 = self.receive_to_file()
        etag = self.server.store.commit(bucket, name, path, size, md5, self.headers.get("if-none-match") == "*")
        self.send_empty(200, [("etag", etag), ("opc-content-md5", md5)])

    def get_object(self, bucket, name):
        store = self.server.store
        with store.lock:
            entry = store.objects[bucket].get(name)
            handle = open(store.path(bucket, name), "rb") if entry else None
        if entry is None:
            raise ServiceError(404, "ObjectNotFound", f"object {name} does not exist in bucket {bucket}")
        with handle:
            size, md5, etag, _ = entry
            wanted = self.headers.get("if-match")
            if wanted is not None and wanted != etag:
                raise ServiceError(412, "IfMatchFailed", f"the ETag of {name} is not {wanted}")
            start, end, status = 0, size - 1, 200
            ranged = self.headers.get("range")
            if ranged:
                found = re.fullmatch(r"bytes=(\d*)-(\d*)", ranged.strip())
                if not found:
                    raise ServiceError(400, "InvalidRange", f"malformed Range {ranged}")
                if found.group(1):
                    start = int(found.group(1))
                    end = int(found.group(2)) if found.group(2) else size - 1
                else:
                    start = max(0, size - int(found.group(2)))
                end = min(end, size - 1)
                if start > end:
                    raise ServiceError(416, "InvalidRange", "the range is outside the object")
                status = 206
            length = end - start + 1 if size else 0
            self.send_response(status)
            self.send_header("opc-request-id", self.request_id)
            self.send_header("content-length", str(length))
            self.send_header("etag", etag)
            self.send_header("content-type", "application/octet-stream")
            if status == 206:
                self.send_header("content-range", f"bytes {start}-{end}/{size}")
            else:
                self.send_header("content-md5", md5)
            self.end_headers()
            if self.command == "HEAD" or length == 0:
                return
            self.wfile.flush()
            if self.drop:
                # Half of the body, then the connection goes away.
                length = length // 2
                self.count("dropped_connections")
                self.close_connection = True
            offset = start
            remaining = length
            while remaining > 0:
                sent = os.sendfile(self.connection.fileno(), handle.fileno(), offset, min(remaining, 8 << 20))
                if sent == 0:
                    break
                offset += sent
                remaining -= sent
            if self.drop:
                self.connection.shutdown(2)

    def delete_object(self, bucket, name):
        store = self.server.store
        with store.lock:
            if store.objects[bucket].pop(name, None) is None:
                raise ServiceError(404, "ObjectNotFound", f"object {name} does not exist in bucket {bucket}")
            store.sorted_names.pop(bucket, None)
            os.unlink(store.path(bucket, name))
        self.send_empty(204)

    def list_objects(self, bucket, query):
        store = self.server.store
        limit = min(int(query.get("limit", self.server.page_size)), 1000)
        prefix = query.get("prefix", "")
        start, start_after, end = query.get("start"), query.get("startAfter"), query.get("end")
        fields = set(query.get("fields", "name").split(","))
        with store.lock:
            every = store.names(bucket)
            first = bisect.bisect_left(every, prefix)
            if start is not None:
                first = max(first, bisect.bisect_left(every, start))
            if start_after is not None:
                first = max(first, bisect.bisect_right(every, start_after))
            names = []
            for name in every[first:]:
                if not name.startswith(prefix) or (end is not None and name >= end) or len(names) > limit:
                    break
                names.append(name)
            page = [(name, store.objects[bucket][name]) for name in names[:limit]]
        objects = []
        for name, (size, md5, etag, modified) in page:
            entry = {"name": name}
            if "timeModified" in fields:
                entry["timeModified"] = modified
            if "size" in fields:
                entry["size"] = size
            if "md5" in fields:
                entry["md5"] = md5
            if "etag" in fields:
                entry["etag"] = etag
            objects.append(entry)
        reply = {"objects": objects}
        if len(names) > limit:
            reply["nextStartWith"] = names[limit]
        self.send_json(200, reply)

    def copy_object(self, namespace, bucket):
        """CopyObject: accepted at once, done by a work request a moment later (or failed)."""
        request = json.loads(self.signed_body())
        store = self.server.store
        store.bucket(namespace, bucket)
        store.bucket(request.get("destinationNamespace"), request.get("destinationBucket"))
        source, destination = request["sourceObjectName"], request["destinationObjectName"]
        with store.lock:
            if source not in store.objects[bucket]:
                raise ServiceError(404, "ObjectNotFound", f"object {source} does not exist in bucket {bucket}")
        work_id = str(uuid.uuid4())
        with store.lock:
            store.work_requests[work_id] = {"status": "ACCEPTED", "errors": []}
        fail = self.server.faults.draw()[0] < self.server.faults.copy_fail_rate
        delay = self.server.faults.copy_delay_ms / 1000
        threading.Thread(target=self.run_copy, args=(work_id, bucket, source, request, fail, delay), daemon=True).start()
        self.count("copy_requests")
        self.send_empty(202, [("opc-work-request-id", work_id)])

    def run_copy(self, work_id, bucket, source, request, fail, delay):
        store = self.server.store
        time.sleep(delay)
        with store.lock:
            work = store.work_requests[work_id]
            entry = store.objects[bucket].get(source)
            wanted = request.get("sourceObjectIfMatchETag")
            if fail:
                work.update(status="FAILED", errors=[{"code": "InternalServerError", "message": "injected copy failure"}])
                return
            if entry is None or (wanted is not None and wanted != entry[2]):
                work.update(status="FAILED", errors=[{"code": "IfMatchFailed", "message": f"the source {source} changed"}])
                return
            # Opened under the lock: the version checked is the one copied, whatever replaces it meanwhile.
            handle = open(store.path(bucket, source), "rb")
        with handle, store.temporary() as temporary:
            shutil.copyfileobj(handle, temporary, 8 << 20)
        size, md5 = entry[0], entry[1]
        store.commit(request["destinationBucket"], request["destinationObjectName"], temporary.name, size, md5, False)
        with store.lock:
            work.update(status="COMPLETED")

    def work_request(self, work_id, errors):
        with self.server.store.lock:
            work = self.server.store.work_requests.get(work_id)
        if work is None:
            raise ServiceError(404, "NotFound", f"work request {work_id} does not exist")
        if errors:
            return self.send_json(200, work["errors"])
        percent = 100.0 if work["status"] == "COMPLETED" else 0.0
        self.send_json(200, {"id": work_id, "status": work["status"], "percentComplete": percent, "operationType": "COPY_OBJECT"})

    def create_upload(self, bucket):
        request = json.loads(self.signed_body())
        if not request.get("object"):
            raise ServiceError(400, "InvalidParameter", "object is required")
        upload_id = str(uuid.uuid4())
        with self.server.store.lock:
            self.server.store.uploads[upload_id] = {"bucket": bucket, "object": request["object"], "parts": {}}
        self.send_json(200, {"namespace": self.server.store.namespace, "bucket": bucket, "object": request["object"],
                             "uploadId": upload_id, "timeCreated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})

    def upload(self, bucket, name, query):
        with self.server.store.lock:
            upload = self.server.store.uploads.get(query["uploadId"])
        if upload is None or upload["bucket"] != bucket or upload["object"] != name:
            raise ServiceError(404, "NoSuchUpload", f"upload {query['uploadId']} does not exist")
        return upload

    def upload_part(self, bucket, name, query):
        upload = self.upload(bucket, name, query)
        number = int(query.get("uploadPartNum", 0))
        if not 1 <= number <= 10000:
            raise ServiceError(400, "InvalidParameter", "uploadPartNum must be 1 to 10000")
        path, size, md5 = self.receive_to_file()
        etag = str(uuid.uuid4())
        with self.server.store.lock:
            previous = upload["parts"].get(number)
            upload["parts"][number] = (path, etag, size)
        if previous:
            os.unlink(previous[0])
        self.send_empty(200, [("etag", etag), ("opc-content-md5", md5)])

    def commit_upload(self, bucket, name, query):
        request = json.loads(self.signed_body())
        upload = self.upload(bucket, name, query)
        parts = sorted(request.get("partsToCommit", []), key=lambda part: part["partNum"])
        store = self.server.store
        for part in parts:
            known = upload["parts"].get(part["partNum"])
            if known is None or known[1] != part["etag"]:
                raise ServiceError(400, "InvalidUploadPart", f"part {part['partNum']} was not uploaded with that ETag")
        digest = hashlib.md5()
        size = 0
        with store.temporary() as output:
            for part in parts:
                with open(upload["parts"][part["partNum"]][0], "rb") as source:
                    # The parts' MD5s were checked on upload; the object's is of the concatenation.
                    length = os.fstat(source.fileno()).st_size
                    output.flush()
                    copied = 0
                    while copied < length:
                        copied += os.copy_file_range(source.fileno(), output.fileno(), length - copied)
                    size += length
                    digest.update(str(part["etag"]).encode())
        etag = store.commit(bucket, name, output.name, size, base64.b64encode(digest.digest()).decode() + f"-{len(parts)}", False)
        self.forget_upload(query["uploadId"])
        self.count("multipart_commits")
        self.send_empty(200, [("etag", etag), ("opc-multipart-md5", f"{len(parts)} parts")])

    def abort_upload(self, bucket, name, query):
        self.upload(bucket, name, query)
        self.forget_upload(query["uploadId"])
        self.send_empty(204)

    def forget_upload(self, upload_id):
        with self.server.store.lock:
            upload = self.server.store.uploads.pop(upload_id, None)
        for path, _, _ in (upload or {}).get("parts", {}).values():
            os.unlink(path)

    def list_uploads(self, bucket):
        with self.server.store.lock:
            uploads = [{"object": upload["object"], "uploadId": upload_id, "bucket": bucket}
                       for upload_id, upload in self.server.store.uploads.items() if upload["bucket"] == bucket]
        self.send_json(200, uploads)


def main():
    parser = argparse.ArgumentParser(description="OCI Object Storage emulator (loopback, signature-checking)")
    parser.add_argument("--oci-config", required=True, help="OCI config file whose profile's key signs the requests")
    parser.add_argument("--profile", default="DEFAULT")
    parser.add_argument("--namespace", default="tributary")
    parser.add_argument("--bucket", action="append", default=[], help="a bucket to create (repeatable)")
    parser.add_argument("--data", help="where objects are kept (default: a temporary directory, removed on exit)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--page-size", type=int, default=1000, help="ListObjects page size when the client sets no limit")
    parser.add_argument("--verbose", action="store_true")
    arguments = parser.parse_args()

    data = arguments.data or tempfile.mkdtemp(prefix="oci-emulator-")
    server = ThreadingHTTPServer((arguments.host, arguments.port), Handler)
    server.daemon_threads = True
    server.key_id, server.public_key = read_public_key(arguments.oci_config, arguments.profile)
    server.store = Store(data, arguments.namespace, arguments.bucket or ["staging"])
    server.faults = Faults()
    server.page_size = arguments.page_size
    server.verbose = arguments.verbose
    server.stats = {"requests": 0, "multipart_commits": 0, "injected_errors": 0, "dropped_connections": 0, "rejected_signatures": 0,
                    "object_gets": 0, "copy_requests": 0, "max_in_flight": 0}
    server.in_flight = 0
    server.stats_lock = threading.Lock()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"listening on http://{arguments.host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        if not arguments.data:
            shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
