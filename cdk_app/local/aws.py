"""Local AWS: a moto server holding what the template declares, and redis-server for a cache.

:class:`LocalAws` starts ``moto_server`` (server mode, its own process) and creates the
template's SQS queues (redrive policies included), DynamoDB tables, S3 buckets and their
notifications, SSM parameters, Secrets Manager secrets (values generated as the template
asks, by the service's own ``GetRandomPassword``), Cognito user pools with their resource
servers, app clients and a test user; and, when the template has an ElastiCache cache, a
``redis-server`` with TLS and the cache's password. Each resource's physical values go into
the :class:`cdk_app.local.template.Resolver`, so references to it resolve to the local one.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from cdk_app.local.processes import CHILD_GROUP, free_port, stop_process, wait_until
from cdk_app.local.template import Physical, Resolver, StackTemplate, local_name

#: Credentials moto accepts (any would do); the functions and the gateway's SigV4 check use these.
ACCESS_KEY_ID = "testing"
SECRET_ACCESS_KEY = "testing"
#: Types whose physical values need no service call: a name derived from the logical id is enough.
_NAMED_ONLY = ("AWS::Lambda::Function", "AWS::Lambda::Alias", "AWS::Lambda::Version", "AWS::Lambda::LayerVersion")
_CACHES = ("AWS::ElastiCache::ServerlessCache", "AWS::ElastiCache::ReplicationGroup", "AWS::ElastiCache::CacheCluster")
_DYNAMIC_REFERENCE = re.compile(r"\{\{resolve:(ssm|ssm-secure|secretsmanager):([^}]*)\}\}")


class LocalAws:
    """The local stand-ins of one stack's AWS resources (start, provision, stop)."""

    def __init__(self, stack: StackTemplate, resolver: Resolver, work: Path, *, user_email: str | None = None,
                 user_password: str | None = None) -> None:
        self.stack, self.resolver, self.work = stack, resolver, work
        self.user_email, self.user_password = user_email, user_password
        self.endpoint = ""
        self.process: subprocess.Popen[bytes] | None = None
        self.caches: list[Any] = []
        #: Per user pool logical id: its id, its clients (id, scopes) and the test user.
        self.identities: dict[str, dict[str, Any]] = {}
        #: Environment variables every function gets on top of its own (a cache's CA, for TLS).
        self.function_environment: dict[str, str] = {}
        self._clients: dict[str, Any] = {}

    # --- the moto server ------------------------------------------------------------------------

    def start(self) -> LocalAws:
        """Start moto in server mode on a free port and wait until it answers."""
        port = free_port()
        log = self.work / "moto.log"
        with log.open("ab") as sink:
            self.process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                            stdout=sink, stderr=sink, stdin=subprocess.DEVNULL, process_group=CHILD_GROUP)
        self.endpoint = f"http://127.0.0.1:{port}"
        wait_until(self._answers, timeout=30, what="moto_server", process=self.process, log=log)
        return self

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.endpoint}/moto-api/data.json", timeout=1):
                return True
        except (urllib.error.URLError, OSError):
            return False

    def client(self, service: str) -> Any:
        if service not in self._clients:
            import boto3

            self._clients[service] = boto3.client(
                service, endpoint_url=self.endpoint, region_name=self.stack.region,
                aws_access_key_id=ACCESS_KEY_ID, aws_secret_access_key=SECRET_ACCESS_KEY)
        return self._clients[service]

    def stop(self) -> None:
        for cache in self.caches:
            cache.stop()
        stop_process(self.process, timeout=1)  # moto holds nothing worth a slow shutdown
        self.process = None

    # --- provisioning ---------------------------------------------------------------------------

    def provision(self) -> None:
        """Create every supported resource, in dependency order, and record its physical values."""
        self.name_functions()
        steps: list[tuple[tuple[str, ...], Callable[[str, Mapping[str, Any]], None]]] = [
            (("AWS::SSM::Parameter",), self._parameter),
            (("AWS::SecretsManager::Secret",), self._secret),
            (("AWS::SQS::Queue",), self._queue),
            (("AWS::DynamoDB::Table", "AWS::DynamoDB::GlobalTable"), self._table),
            (("AWS::S3::Bucket",), self._bucket),
            (("AWS::Cognito::UserPool",), self._user_pool),
            (("AWS::Cognito::UserPoolResourceServer",), self._resource_server),
            (("AWS::Cognito::UserPoolClient",), self._user_pool_client),
            (("Custom::S3BucketNotifications",), self._bucket_notifications),
            (_CACHES, self._cache),
        ]
        for types, create in steps:
            resources = self.stack.of_type(*types)
            if types == ("AWS::SQS::Queue",):  # dead-letter queues first: redrive policies name them
                resources = dict(sorted(resources.items(), key=lambda item: "RedrivePolicy" in item[1].get(
                    "Properties", {})))
            for logical_id, resource in resources.items():
                create(logical_id, self.resolver.resolve(resource.get("Properties", {})))
        for logical_id in self.identities:
            self._test_user(logical_id)

    def name_functions(self) -> None:
        """Functions, aliases, versions and layers: names and ARNs as CloudFormation would make them."""
        r = self.resolver
        for logical_id, resource in self.stack.of_type(*_NAMED_ONLY).items():
            properties = resource.get("Properties", {})
            if resource["Type"] == "AWS::Lambda::Function":
                name = properties.get("FunctionName")
                name = r.text(name) if name is not None else local_name(self.stack.name, logical_id)
                arn = r.arn("lambda", f"function:{name}")
                r.physical[logical_id] = Physical(name, {"Arn": arn})
            elif resource["Type"] == "AWS::Lambda::LayerVersion":
                name = properties.get("LayerName") or local_name(self.stack.name, logical_id)
                r.physical[logical_id] = Physical(r.arn("lambda", f"layer:{r.text(name)}:1"))
        for logical_id, resource in self.stack.of_type("AWS::Lambda::Version", "AWS::Lambda::Alias").items():
            properties = resource.get("Properties", {})
            function_arn = self.function_arn(r.text(properties["FunctionName"]))
            qualifier = r.text(properties["Name"]) if resource["Type"] == "AWS::Lambda::Alias" else "1"
            r.physical[logical_id] = Physical(f"{function_arn}:{qualifier}", {
                "Version": "1", "FunctionArn": function_arn, "AliasArn": f"{function_arn}:{qualifier}"})

    def function_arn(self, name_or_arn: str) -> str:
        return name_or_arn if name_or_arn.startswith("arn:") else self.resolver.arn("lambda", f"function:{name_or_arn}")

    def _name(self, properties: Mapping[str, Any], key: str, logical_id: str, **naming: Any) -> str:
        return str(properties.get(key) or local_name(self.stack.name, logical_id, **naming))

    def _parameter(self, logical_id: str, p: Mapping[str, Any]) -> None:
        name = self._name(p, "Name", logical_id)
        self.client("ssm").put_parameter(Name=name, Value=str(p.get("Value", "")), Type=p.get("Type", "String"),
                                         Overwrite=True, **({"Description": p["Description"]} if "Description" in p
                                                            else {}))
        self.resolver.physical[logical_id] = Physical(name, {"Type": p.get("Type", "String"), "Value": p.get("Value")})

    def _secret(self, logical_id: str, p: Mapping[str, Any]) -> None:
        name = self._name(p, "Name", logical_id)
        value = p.get("SecretString")
        if value is None:
            generate = dict(p.get("GenerateSecretString", {}))
            template, key = generate.pop("SecretStringTemplate", None), generate.pop("GenerateStringKey", None)
            options = {option: generate[option] for option in (
                "PasswordLength", "ExcludeCharacters", "ExcludeNumbers", "ExcludePunctuation", "ExcludeUppercase",
                "ExcludeLowercase", "IncludeSpace", "RequireEachIncludedType") if option in generate}
            value = self.client("secretsmanager").get_random_password(**options)["RandomPassword"]
            if template is not None and key is not None:
                value = json.dumps({**json.loads(template), key: value})
        arn = self.client("secretsmanager").create_secret(Name=name, SecretString=str(value))["ARN"]
        self.resolver.physical[logical_id] = Physical(arn, {"Id": arn})

    def _queue(self, logical_id: str, p: Mapping[str, Any]) -> None:
        fifo = str(p.get("FifoQueue", "false")).lower() == "true"
        name = self._name(p, "QueueName", logical_id, limit=75 if fifo else 80)
        if fifo and not name.endswith(".fifo"):
            name += ".fifo"
        attributes = {key: json.dumps(value) if isinstance(value, dict) else str(value).lower()
                      if isinstance(value, bool) else str(value) for key, value in p.items()
                      if key in ("VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds", "MaximumMessageSize",
                                 "ReceiveMessageWaitTimeSeconds", "RedrivePolicy", "FifoQueue",
                                 "ContentBasedDeduplication")}
        url = self.client("sqs").create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arn = self.resolver.arn("sqs", name)
        self.resolver.physical[logical_id] = Physical(url, {"Arn": arn, "QueueName": name, "QueueUrl": url})

    def _table(self, logical_id: str, p: Mapping[str, Any]) -> None:
        name = self._name(p, "TableName", logical_id, limit=255)
        indexes = [{key: index[key] for key in ("IndexName", "KeySchema", "Projection")}
                   for index in p.get("GlobalSecondaryIndexes", [])]
        options: dict[str, Any] = {"BillingMode": "PAY_PER_REQUEST"}
        if indexes:
            options["GlobalSecondaryIndexes"] = indexes
        if p.get("LocalSecondaryIndexes"):
            options["LocalSecondaryIndexes"] = [{key: index[key] for key in ("IndexName", "KeySchema", "Projection")}
                                                for index in p["LocalSecondaryIndexes"]]
        dynamodb = self.client("dynamodb")
        dynamodb.create_table(TableName=name, KeySchema=p["KeySchema"], AttributeDefinitions=p["AttributeDefinitions"],
                              **options)
        ttl = p.get("TimeToLiveSpecification")
        if ttl and str(ttl.get("Enabled")).lower() == "true":
            dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification={
                "AttributeName": ttl["AttributeName"], "Enabled": True})
        arn = self.resolver.arn("dynamodb", f"table/{name}")
        self.resolver.physical[logical_id] = Physical(name, {"Arn": arn, "StreamArn": f"{arn}/stream/local"})

    def _bucket(self, logical_id: str, p: Mapping[str, Any]) -> None:
        name = self._name(p, "BucketName", logical_id, limit=63, lower=True)
        s3 = self.client("s3")
        s3.create_bucket(Bucket=name)
        if p.get("VersioningConfiguration", {}).get("Status") == "Enabled":
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        self.resolver.physical[logical_id] = Physical(name, {
            "Arn": f"arn:aws:s3:::{name}", "DomainName": f"{name}.s3.amazonaws.com",
            "RegionalDomainName": f"{name}.s3.{self.stack.region}.amazonaws.com",
            "WebsiteURL": f"http://{name}.s3-website-{self.stack.region}.amazonaws.com"})
        if p.get("NotificationConfiguration"):
            self._bucket_notifications(logical_id, {"BucketName": name,
                                                    "NotificationConfiguration": p["NotificationConfiguration"]})

    def _bucket_notifications(self, logical_id: str, p: Mapping[str, Any]) -> None:
        """CDK's ``Custom::S3BucketNotifications`` (or a bucket's own): moto delivers them to its queues."""
        configuration = {kind: entries for kind, entries in p["NotificationConfiguration"].items()
                         if kind in ("QueueConfigurations", "TopicConfigurations")}
        if p["NotificationConfiguration"].get("LambdaFunctionConfigurations"):
            print(f"local: {logical_id}: S3 notifications straight to a function are not delivered locally "
                  "(notifications to SQS are)", file=sys.stderr)
        self.client("s3").put_bucket_notification_configuration(Bucket=p["BucketName"],
                                                                 NotificationConfiguration=configuration)

    def _user_pool(self, logical_id: str, p: Mapping[str, Any]) -> None:
        options = {key: p[key] for key in ("UsernameAttributes", "AliasAttributes", "AutoVerifiedAttributes",
                                           "Policies", "Schema") if key in p}
        cognito = self.client("cognito-idp")
        pool_id = cognito.create_user_pool(PoolName=self._name(p, "UserPoolName", logical_id, limit=128),
                                           **options)["UserPool"]["Id"]
        provider = f"cognito-idp.{self.stack.region}.amazonaws.com/{pool_id}"
        self.resolver.physical[logical_id] = Physical(pool_id, {
            "Arn": self.resolver.arn("cognito-idp", f"userpool/{pool_id}"), "ProviderName": provider,
            "ProviderURL": f"https://{provider}", "UserPoolId": pool_id})
        self.identities[logical_id] = {"pool_id": pool_id, "issuer": f"https://{provider}",
                                       "jwks_url": f"{self.endpoint}/{pool_id}/.well-known/jwks.json",
                                       "email_sign_in": "email" in p.get("UsernameAttributes", []), "clients": {}}

    def _pool_of(self, pool_id: str) -> dict[str, Any]:
        return next(identity for identity in self.identities.values() if identity["pool_id"] == pool_id)

    def _resource_server(self, logical_id: str, p: Mapping[str, Any]) -> None:
        self.client("cognito-idp").create_resource_server(
            UserPoolId=p["UserPoolId"], Identifier=p["Identifier"], Name=p["Name"], Scopes=p.get("Scopes", []))
        self.resolver.physical[logical_id] = Physical(p["Identifier"])

    def _user_pool_client(self, logical_id: str, p: Mapping[str, Any]) -> None:
        options = {key: p[key] for key in (
            "GenerateSecret", "ExplicitAuthFlows", "AllowedOAuthFlows", "AllowedOAuthScopes",
            "AllowedOAuthFlowsUserPoolClient", "CallbackURLs", "LogoutURLs", "SupportedIdentityProviders",
            "PreventUserExistenceErrors", "AccessTokenValidity", "IdTokenValidity", "RefreshTokenValidity",
            "TokenValidityUnits") if key in p}
        client = self.client("cognito-idp").create_user_pool_client(
            UserPoolId=p["UserPoolId"], ClientName=self._name(p, "ClientName", logical_id, limit=128),
            **options)["UserPoolClient"]
        self.resolver.physical[logical_id] = Physical(client["ClientId"], {
            "ClientId": client["ClientId"], "ClientSecret": client.get("ClientSecret", ""), "Name": client["ClientName"]})
        self._pool_of(p["UserPoolId"])["clients"][logical_id] = {
            "id": client["ClientId"], "scopes": list(p.get("AllowedOAuthScopes", [])),
            "secret": bool(client.get("ClientSecret"))}

    def _test_user(self, logical_id: str) -> None:
        """A confirmed user in each pool (email sign-in or a username), for ``make token``."""
        if self.user_email is None or self.user_password is None:
            return
        identity = self.identities[logical_id]
        username = self.user_email if identity["email_sign_in"] else self.user_email.split("@")[0]
        cognito = self.client("cognito-idp")
        cognito.admin_create_user(UserPoolId=identity["pool_id"], Username=username, MessageAction="SUPPRESS",
                                  UserAttributes=[{"Name": "email", "Value": self.user_email},
                                                  {"Name": "email_verified", "Value": "true"}])
        cognito.admin_set_user_password(UserPoolId=identity["pool_id"], Username=username,
                                        Password=self.user_password, Permanent=True)
        identity["username"] = username

    def _cache(self, logical_id: str, p: Mapping[str, Any]) -> None:
        """One redis-server with TLS (a throwaway CA the functions trust) and the cache's password."""
        from cdk_app.local.redis import RedisServer, make_certificates

        token = p.get("AuthToken")
        password = self.resolve_dynamic(token) if isinstance(token, str) else None
        folder = self.work / f"cache-{logical_id}"
        folder.mkdir(parents=True, exist_ok=True)
        certificates = make_certificates(folder)
        cluster = self.stack.resources[logical_id]["Type"] == "AWS::ElastiCache::ServerlessCache" or \
            str(p.get("ClusterMode", "")).lower() == "enabled"
        server = RedisServer(folder, certificates, password, cluster=cluster).start()
        self.caches.append(server)
        self.function_environment["SSL_CERT_FILE"] = str(certificates[0])
        endpoint = {"Address": "127.0.0.1", "Port": str(server.port)}
        self.resolver.physical[logical_id] = Physical(local_name(self.stack.name, logical_id), {
            f"{name}.{part}": value for name in ("Endpoint", "PrimaryEndPoint", "ConfigurationEndPoint",
                                                 "ReaderEndPoint", "RedisEndpoint", "ReaderEndpoint")
            for part, value in endpoint.items()})
        print(f"local: {logical_id}: redis-server (TLS{', a password' if password else ''}"
              f"{', cluster mode' if cluster else ''}) on 127.0.0.1:{server.port}", file=sys.stderr)

    def resolve_dynamic(self, text: str) -> str:
        """``{{resolve:secretsmanager|ssm:...}}`` references in ``text``, read from the local services."""

        def read(match: re.Match[str]) -> str:
            service, reference = match.groups()
            if service.startswith("ssm"):
                name = reference.split(":")[0]
                return self.client("ssm").get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
            # secret-id:SecretString:json-key:version-stage:version-id (the id may be an ARN, with colons)
            parts = reference.split(":SecretString:")
            secret_id, rest = (parts + [""])[:2]
            value = self.client("secretsmanager").get_secret_value(SecretId=secret_id)["SecretString"]
            key = rest.split(":")[0] if rest else ""
            return str(json.loads(value)[key]) if key else value

        return _DYNAMIC_REFERENCE.sub(read, text)
