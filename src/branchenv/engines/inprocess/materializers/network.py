"""Materializers for a basic VPC: the VPC, its subnets and security groups.

The cloud assigns these resources' ids, so nothing can collide by name (a security group's name
is unique within its VPC and is checked); an interrupted create is found again by the stack's
identity tags, which EC2 applies in the create call itself (``TagSpecifications``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from branchenv.engines.inprocess.materializers.base import (
    Applied,
    Context,
    Materializer,
    Prior,
    aws_tags_list,
    error_code,
    found,
    register,
    require,
    tag_changes,
)
from branchenv.errors import EngineError
from branchenv.metadata import KEY_STACK


def _tag_spec(kind: str, tags: Mapping[str, str]) -> list[dict[str, Any]]:
    return [{"ResourceType": kind, "Tags": aws_tags_list(tags)}] if tags else []


def _sync_tags(ctx: Context, resource_id: str, old: Mapping[str, str], new: dict[str, str]) -> None:
    ec2 = ctx.client("ec2")
    to_set, to_remove = tag_changes(old, new)
    if to_set:
        ec2.create_tags(Resources=[resource_id], Tags=aws_tags_list(to_set))
    if to_remove:
        ec2.delete_tags(Resources=[resource_id], Tags=[{"Key": k} for k in to_remove])


def _describe(ctx: Context, call: str, key: str, ids_arg: str, rid: str, missing: str) -> Any:
    """The described resource, or None when EC2 says it does not exist."""
    from botocore.exceptions import ClientError

    try:
        items = getattr(ctx.client("ec2"), call)(**{ids_arg: [rid]})[key]
    except ClientError as exc:
        if error_code(exc) == missing:
            return None
        raise
    return items[0] if items else None


def _tagged(
    ctx: Context,
    call: str,
    key: str,
    id_key: str,
    stack_tags: Mapping[str, str],
    extra: list[dict[str, Any]] | None = None,
) -> list[str]:
    stack = stack_tags.get(KEY_STACK)
    if not stack:
        return []
    filters = [{"Name": f"tag:{KEY_STACK}", "Values": [stack]}, *(extra or [])]
    items = getattr(ctx.client("ec2"), call)(Filters=filters)[key]
    return [str(i[id_key]) for i in items]


def _delete(ctx: Context, call: str, missing: tuple[str, ...], **kwargs: Any) -> bool:
    from botocore.exceptions import ClientError

    try:
        getattr(ctx.client("ec2"), call)(**kwargs)
    except ClientError as exc:
        if error_code(exc) in missing:
            return False
        raise
    return True


@register
class Vpc(Materializer):
    """aws.ec2.Vpc: the CIDR block, DNS support and hostnames, tenancy and tags."""

    type_token = "aws:ec2/vpc:Vpc"
    recovered_by = "the stack's identity tags and its CIDR block"
    name_property = None
    replace_on_change = frozenset({"cidrBlock", "ipv4IpamPoolId", "ipv4NetmaskLength"})
    honours = frozenset({"cidrBlock", "enableDnsSupport", "enableDnsHostnames", "instanceTenancy"})
    _missing = "InvalidVpcID.NotFound"

    def create(self, ctx: Context, *, inputs: dict[str, Any], tags: dict[str, str]) -> Applied:
        ec2 = ctx.client("ec2")
        vpc = ec2.create_vpc(
            CidrBlock=inputs["cidrBlock"],
            InstanceTenancy=inputs.get("instanceTenancy") or "default",
            TagSpecifications=_tag_spec("vpc", tags),
        )["Vpc"]
        vpc_id = vpc["VpcId"]
        self._dns(ctx, vpc_id, inputs, frozenset({"enableDnsSupport", "enableDnsHostnames"}))
        return self._applied(ctx, inputs, vpc_id)

    @staticmethod
    def _dns(ctx: Context, vpc_id: str, inputs: dict[str, Any], keys: frozenset[str]) -> None:
        ec2 = ctx.client("ec2")
        # The provider's defaults: DNS support on, hostnames off; one attribute per call.
        if "enableDnsSupport" in keys:
            wanted = inputs.get("enableDnsSupport")
            ec2.modify_vpc_attribute(
                VpcId=vpc_id, EnableDnsSupport={"Value": True if wanted is None else bool(wanted)}
            )
        if "enableDnsHostnames" in keys and inputs.get("enableDnsHostnames") is not None:
            ec2.modify_vpc_attribute(
                VpcId=vpc_id, EnableDnsHostnames={"Value": bool(inputs["enableDnsHostnames"])}
            )

    def update(
        self,
        ctx: Context,
        *,
        prior: Prior,
        inputs: dict[str, Any],
        tags: dict[str, str],
        changed: frozenset[str],
    ) -> Applied:
        if "instanceTenancy" in changed:
            # The provider changes it in place (ModifyVpcTenancy, to `default` only); the local
            # cloud has no such call, and a silent no-op would leave the VPC unlike the program.
            raise EngineError(
                "changing a VPC's instanceTenancy in place is not supported by the inprocess "
                "engine; recreate the VPC (change its logical name) or use `--engine pulumi`"
            )
        self._dns(ctx, prior.id, inputs, changed & {"enableDnsSupport", "enableDnsHostnames"})
        if "tags" in changed:
            _sync_tags(ctx, prior.id, prior.tags, tags)
        return self._applied(ctx, inputs, prior.id)

    def _applied(self, ctx: Context, inputs: dict[str, Any], vpc_id: str) -> Applied:
        ec2 = ctx.client("ec2")
        vpc = _describe(ctx, "describe_vpcs", "Vpcs", "VpcIds", vpc_id, self._missing) or {}
        groups = ec2.describe_security_groups(
            Filters=[
                {"Name": "vpc-id", "Values": [vpc_id]},
                {"Name": "group-name", "Values": ["default"]},
            ]
        )["SecurityGroups"]
        tables = ec2.describe_route_tables(
            Filters=[
                {"Name": "vpc-id", "Values": [vpc_id]},
                {"Name": "association.main", "Values": ["true"]},
            ]
        )["RouteTables"]
        owner = vpc.get("OwnerId", "123456789012")
        return Applied(
            id=vpc_id,
            outputs={
                **inputs,
                "id": vpc_id,
                "arn": f"arn:aws:ec2:{ctx.region}:{owner}:vpc/{vpc_id}",
                "ownerId": owner,
                "defaultSecurityGroupId": groups[0]["GroupId"] if groups else None,
                "mainRouteTableId": tables[0]["RouteTableId"] if tables else None,
            },
        )

    def leftovers(
        self,
        ctx: Context,
        *,
        inputs: dict[str, Any],
        stack_tags: Mapping[str, str],
        known_ids: frozenset[str],
    ) -> list[str]:
        extra = [{"Name": "cidr", "Values": [inputs["cidrBlock"]]}]
        return [
            v
            for v in _tagged(ctx, "describe_vpcs", "Vpcs", "VpcId", stack_tags, extra)
            if v not in known_ids
        ]

    def delete(self, ctx: Context, *, id: str, outputs: dict[str, Any]) -> bool:
        return _delete(ctx, "delete_vpc", (self._missing,), VpcId=id)

    def exists(self, ctx: Context, *, id: str, outputs: dict[str, Any]) -> bool:
        describe = ctx.client("ec2").describe_vpcs
        return found((self._missing,), lambda: require(describe(VpcIds=[id])["Vpcs"]))


@register
class Subnet(Materializer):
    """aws.ec2.Subnet: its VPC, CIDR block, availability zone, public-IP-on-launch and tags."""

    type_token = "aws:ec2/subnet:Subnet"
    recovered_by = "the stack's identity tags, its VPC and CIDR block"
    name_property = None
    replace_on_change = frozenset(
        {"vpcId", "cidrBlock", "availabilityZone", "availabilityZoneId", "outpostArn", "ipv6Native"}
    )
    honours = frozenset(
        {"vpcId", "cidrBlock", "availabilityZone", "availabilityZoneId", "mapPublicIpOnLaunch"}
    )
    _missing = "InvalidSubnetID.NotFound"

    def create(self, ctx: Context, *, inputs: dict[str, Any], tags: dict[str, str]) -> Applied:
        args: dict[str, Any] = {
            "VpcId": inputs["vpcId"],
            "CidrBlock": inputs["cidrBlock"],
            "TagSpecifications": _tag_spec("subnet", tags),
        }
        if inputs.get("availabilityZone"):
            args["AvailabilityZone"] = inputs["availabilityZone"]
        elif inputs.get("availabilityZoneId"):
            args["AvailabilityZoneId"] = inputs["availabilityZoneId"]
        subnet = ctx.client("ec2").create_subnet(**args)["Subnet"]
        if inputs.get("mapPublicIpOnLaunch"):
            self._public_ip(ctx, subnet["SubnetId"], True)
        return self._applied(ctx, inputs, subnet["SubnetId"])

    @staticmethod
    def _public_ip(ctx: Context, subnet_id: str, value: bool) -> None:
        ctx.client("ec2").modify_subnet_attribute(
            SubnetId=subnet_id, MapPublicIpOnLaunch={"Value": value}
        )

    def update(
        self,
        ctx: Context,
        *,
        prior: Prior,
        inputs: dict[str, Any],
        tags: dict[str, str],
        changed: frozenset[str],
    ) -> Applied:
        if "mapPublicIpOnLaunch" in changed:
            self._public_ip(ctx, prior.id, bool(inputs.get("mapPublicIpOnLaunch")))
        if "tags" in changed:
            _sync_tags(ctx, prior.id, prior.tags, tags)
        return self._applied(ctx, inputs, prior.id)

    def _applied(self, ctx: Context, inputs: dict[str, Any], subnet_id: str) -> Applied:
        subnet = _describe(
            ctx, "describe_subnets", "Subnets", "SubnetIds", subnet_id, self._missing
        )
        subnet = subnet or {}
        return Applied(
            id=subnet_id,
            outputs={
                **inputs,
                "id": subnet_id,
                "arn": subnet.get("SubnetArn"),
                "availabilityZone": subnet.get("AvailabilityZone"),
                "availabilityZoneId": subnet.get("AvailabilityZoneId"),
                "ownerId": subnet.get("OwnerId"),
            },
        )

    def leftovers(
        self,
        ctx: Context,
        *,
        inputs: dict[str, Any],
        stack_tags: Mapping[str, str],
        known_ids: frozenset[str],
    ) -> list[str]:
        extra = [
            {"Name": "vpc-id", "Values": [inputs["vpcId"]]},
            {"Name": "cidr-block", "Values": [inputs["cidrBlock"]]},
        ]
        return [
            s
            for s in _tagged(ctx, "describe_subnets", "Subnets", "SubnetId", stack_tags, extra)
            if s not in known_ids
        ]

    def delete(self, ctx: Context, *, id: str, outputs: dict[str, Any]) -> bool:
        return _delete(ctx, "delete_subnet", (self._missing,), SubnetId=id)

    def exists(self, ctx: Context, *, id: str, outputs: dict[str, Any]) -> bool:
        describe = ctx.client("ec2").describe_subnets
        return found((self._missing,), lambda: require(describe(SubnetIds=[id])["Subnets"]))


def _permissions(rules: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Pulumi's ingress/egress rule inputs as EC2 IpPermissions."""
    out = []
    for rule in rules or []:
        protocol = str(rule.get("protocol", "-1"))
        perm: dict[str, Any] = {"IpProtocol": "-1" if protocol in ("-1", "all") else protocol}
        if perm["IpProtocol"] != "-1":
            perm["FromPort"] = int(rule.get("fromPort", 0))
            perm["ToPort"] = int(rule.get("toPort", 0))
        description = rule.get("description")
        ranges = [
            {"CidrIp": c, **({"Description": description} if description else {})}
            for c in rule.get("cidrBlocks") or []
        ]
        if ranges:
            perm["IpRanges"] = ranges
        v6 = [{"CidrIpv6": c} for c in rule.get("ipv6CidrBlocks") or []]
        if v6:
            perm["Ipv6Ranges"] = v6
        groups = [{"GroupId": g} for g in rule.get("securityGroups") or []]
        if groups:
            perm["UserIdGroupPairs"] = groups
        out.append(perm)
    return out


def _strip(perms: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Described permissions reduced to what a revoke call accepts."""
    keep = ("IpProtocol", "FromPort", "ToPort", "IpRanges", "Ipv6Ranges", "UserIdGroupPairs")
    out = []
    for p in perms:
        q = {k: p[k] for k in keep if p.get(k) not in (None, [])}
        if "UserIdGroupPairs" in q:
            q["UserIdGroupPairs"] = [{"GroupId": g["GroupId"]} for g in q["UserIdGroupPairs"]]
        out.append(q)
    return out


@register
class SecurityGroup(Materializer):
    """aws.ec2.SecurityGroup: name, description, VPC, ingress and egress rules (the default
    allow-all egress is removed, as the provider does) and tags."""

    type_token = "aws:ec2/securityGroup:SecurityGroup"
    recovered_by = "its name and VPC"
    name_max_len = 255
    unique_name = False  # unique per VPC only
    replace_on_change = frozenset({"name", "namePrefix", "description", "vpcId"})
    honours = frozenset({"description", "vpcId", "ingress", "egress"})
    _missing = ("InvalidGroup.NotFound", "InvalidGroupId.Malformed")

    def lookup(self, ctx: Context, *, inputs: dict[str, Any]) -> str | None:
        filters = [{"Name": "group-name", "Values": [inputs["name"]]}]
        if inputs.get("vpcId"):
            filters.append({"Name": "vpc-id", "Values": [inputs["vpcId"]]})
        groups = ctx.client("ec2").describe_security_groups(Filters=filters)["SecurityGroups"]
        return str(groups[0]["GroupId"]) if groups else None

    def create(self, ctx: Context, *, inputs: dict[str, Any], tags: dict[str, str]) -> Applied:
        self.fail_if_exists(ctx, inputs)
        args: dict[str, Any] = {
            "GroupName": inputs["name"],
            "Description": inputs.get("description") or "Managed by Pulumi",
            "TagSpecifications": _tag_spec("security-group", tags),
        }
        if inputs.get("vpcId"):
            args["VpcId"] = inputs["vpcId"]
        group_id = ctx.client("ec2").create_security_group(**args)["GroupId"]
        self._rules(ctx, group_id, inputs, {"ingress", "egress"})
        return self._applied(ctx, inputs, group_id)

    def _rules(self, ctx: Context, group_id: str, inputs: dict[str, Any], which: set[str]) -> None:
        ec2 = ctx.client("ec2")
        group = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
        for key, current, revoke, authorize in (
            (
                "ingress",
                group.get("IpPermissions", []),
                ec2.revoke_security_group_ingress,
                ec2.authorize_security_group_ingress,
            ),
            (
                "egress",
                group.get("IpPermissionsEgress", []),
                ec2.revoke_security_group_egress,
                ec2.authorize_security_group_egress,
            ),
        ):
            if key not in which:
                continue
            if current:
                revoke(GroupId=group_id, IpPermissions=_strip(current))
            wanted = _permissions(inputs.get(key))
            if wanted:
                authorize(GroupId=group_id, IpPermissions=wanted)

    def update(
        self,
        ctx: Context,
        *,
        prior: Prior,
        inputs: dict[str, Any],
        tags: dict[str, str],
        changed: frozenset[str],
    ) -> Applied:
        rules = set(changed & {"ingress", "egress"})
        if rules:
            self._rules(ctx, prior.id, inputs, rules)
        if "tags" in changed:
            _sync_tags(ctx, prior.id, prior.tags, tags)
        return self._applied(ctx, inputs, prior.id)

    @staticmethod
    def _applied(ctx: Context, inputs: dict[str, Any], group_id: str) -> Applied:
        group = ctx.client("ec2").describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
        owner = group.get("OwnerId", "123456789012")
        return Applied(
            id=group_id,
            outputs={
                **inputs,
                "id": group_id,
                "arn": f"arn:aws:ec2:{ctx.region}:{owner}:security-group/{group_id}",
                "ownerId": owner,
                "vpcId": group.get("VpcId"),
            },
        )

    def delete(self, ctx: Context, *, id: str, outputs: dict[str, Any]) -> bool:
        return _delete(ctx, "delete_security_group", self._missing, GroupId=id)

    def exists(self, ctx: Context, *, id: str, outputs: dict[str, Any]) -> bool:
        describe = ctx.client("ec2").describe_security_groups
        return found(self._missing, lambda: require(describe(GroupIds=[id])["SecurityGroups"]))
