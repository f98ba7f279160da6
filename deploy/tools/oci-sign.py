"""Signs one OCI request the way the API-key scheme does, for curl in the benchmarks: prints the
date, host and authorization headers, one per line. Usage: oci-sign.py METHOD PATH ENDPOINT CONFIG
(an OCI CLI config file; a relative key_file is read beside it). Uses Debian's python3-cryptography."""
import base64, configparser, email.utils, os, sys
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

method, path, endpoint, config_file = sys.argv[1:]
config = configparser.ConfigParser(); config.read(config_file); profile = config["DEFAULT"]
key_file = os.path.join(os.path.dirname(config_file), profile["key_file"])
key = serialization.load_pem_private_key(open(key_file, "rb").read(), None)
date, host = email.utils.formatdate(usegmt=True), endpoint.split("://")[1]
text = f"date: {date}\n(request-target): {method.lower()} {path}\nhost: {host}"
signature = base64.b64encode(key.sign(text.encode(), padding.PKCS1v15(), hashes.SHA256())).decode()
key_id = f"{profile['tenancy']}/{profile['user']}/{profile['fingerprint']}"
print(f"date: {date}"); print(f"host: {host}")
print(f'authorization: Signature algorithm="rsa-sha256",headers="date (request-target) host",keyId="{key_id}",signature="{signature}",version="1"')
