"""Every closed set of words a setting or a construct prop accepts, declared once.

``cdk.json``'s settings and the constructs' props are typed with the same names, so a word
means one thing from the settings to the runtime: a cache's *kind* is how it is deployed
(``serverless`` or ``node-based``), its *mode* the protocol the app speaks to it
(:data:`CACHE_MODES`, read by ``fastapi_lambda.cache`` as ``CACHE_MODE``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal

from fastapi_lambda.constants import CacheMode

#: The Lambda Python runtimes the dependency layer is built for.
PythonVersion = Literal["3.12", "3.13", "3.14"]
#: Graviton (cheaper) or x86.
Architecture = Literal["arm64", "x86_64"]
#: The API Gateway front door: HTTP API (cheaper, JWT authorizers) or REST API (X-Ray, WAF, usage plans).
ApiType = Literal["http", "rest"]
#: What a browser may send cross-origin ("*" for any method).
CorsMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "*"]
#: A user pool's multi-factor authentication, and its threat protection (the Plus feature plan).
Mfa = Literal["off", "optional", "required"]
ThreatProtection = Literal["off", "audit", "enforced"]
#: Tracing in every function: the X-Ray SDK, OpenTelemetry through the ADOT layer, or none.
Tracing = Literal["xray", "adot", "off"]
#: One cold-start strategy per function.
Strategy = Literal["provisioned", "snapstart", "warmup", "none"]
#: How a new version reaches the live alias (CodeDeploy): all at once, a canary share first, or in equal steps.
ReleaseStrategy = Literal["all-at-once", "canary", "linear"]
#: How a function's code ships: a zip with the shared dependency layer, or a container image.
Packaging = Literal["zip", "image"]
#: How the cache is deployed: ElastiCache Serverless, or a node-based replication group.
CacheKind = Literal["serverless", "node-based"]
#: How functions in the network reach AWS APIs: VPC endpoints, or a NAT gateway.
Egress = Literal["endpoints", "nat"]
#: What happens to logs and other stateful resources when the stack is deleted.
RemovalPolicyName = Literal["destroy", "retain"]
#: The values CloudWatch Logs accepts for retention, in days.
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192,
                      2557, 2922, 3288, 3653)
if TYPE_CHECKING:  # a checker cannot read Literal[<a tuple>]; pydantic checks the values at runtime
    LogRetentionDays = int
else:
    LogRetentionDays = Literal[LOG_RETENTION_DAYS]

#: The protocol the app speaks to each kind of cache: ElastiCache Serverless speaks the cluster protocol,
#: a replication group (cluster mode disabled) the standalone one.
CACHE_MODES: Mapping[CacheKind, CacheMode] = {"serverless": "cluster", "node-based": "standalone"}
