"""/api/v1 members, invitations and the tenant's SSO connection (API.md, Sign-in and
members). Thin: parse, call one service, shape the reply."""

from __future__ import annotations

from typing import Any

from flask import Response, after_this_request, current_app, url_for
from flask.views import MethodView

from erp.auth import mail, queries, schemas, services
from erp.auth.authn import acting_role
from erp.auth.models import Invitation, Membership, SsoConnection
from erp.errors import Problem
from erp.extensions import Blueprint, db
from erp.fields import parse_uuid
from erp.idempotency import idempotent
from erp.pagination import ListArgs, Page
from erp.principals import TenantRef, current_principal, requires_scope

blp = Blueprint("members", __name__, url_prefix="/api/v1", description="Members and sign-in")


@blp.route("/members")
@requires_scope("members:read")
@blp.arguments(ListArgs, location="query")
@blp.response(200, schemas.MemberPage)
def members(args: dict[str, Any]) -> Page[Membership]:
    return queries.members_page(db.session, args["cursor"], args["limit"])


@blp.route("/members/<member_id>")
class MemberById(MethodView):
    @requires_scope("members:write")
    @blp.arguments(schemas.MemberPatch)
    @blp.response(200, schemas.MemberOut)
    def patch(self, body: dict[str, Any], member_id: str) -> Membership:
        """Change a role; it applies from the member's next request."""
        return services.change_role(
            db.session, parse_uuid(member_id, "member_id"), body["role"], acting_role()
        )

    @requires_scope("members:write")
    @blp.response(204)
    def delete(self, member_id: str) -> None:
        """Remove a member: their sessions end at once (their API keys stay the tenant's)."""
        services.remove_member(db.session, parse_uuid(member_id, "member_id"), acting_role())


@blp.route("/invitations")
class Invitations(MethodView):
    @requires_scope("members:read")
    @blp.arguments(ListArgs, location="query")
    @blp.response(200, schemas.InvitationPage)
    def get(self, args: dict[str, Any]) -> Page[Invitation]:
        return queries.invitations_page(db.session, args["cursor"], args["limit"])

    @requires_scope("members:write")
    @idempotent(shown_once=("url",))
    @blp.arguments(schemas.InvitationIn)
    @blp.response(201, schemas.InvitationCreatedOut)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Invite by email; `url` is a single-use link valid 7 days, shown only here."""
        inv, token = services.invite(db.session, body["email"], body["role"], acting_role())
        out = {c: getattr(inv, c) for c in schemas.InvitationOut._declared_fields}
        tenant = _tenant()
        out["url"] = url_for("auth_pages.accept", tenant=tenant.slug, token=token, _external=True)
        smtp_url = current_app.config["ERP_SETTINGS"].smtp_url
        if smtp_url:  # once committed (after_this_request runs after the commit)

            @after_this_request
            def _mail(response: Response) -> Response:
                if response.status_code == 201:
                    mail.send_invitation(smtp_url, inv.email, tenant.name, inv.role, out["url"])
                return response

        return out


def _tenant() -> TenantRef:
    tenant = current_principal().tenant
    if tenant is None:
        raise Problem("forbidden")
    return tenant


@blp.route("/invitations/<invitation_id>", methods=["DELETE"])
@requires_scope("members:write")
@blp.response(204)
def delete_invitation(invitation_id: str) -> None:
    services.revoke_invitation(db.session, parse_uuid(invitation_id, "invitation_id"))


@blp.route("/sso-connection")
class SsoConnectionView(MethodView):
    @requires_scope("members:read")
    @blp.response(200, schemas.SsoConnectionOut)
    @blp.alt_response(404, description="The tenant has no connection of its own.")
    def get(self) -> SsoConnection:
        row = services.sso_connection(db.session)
        if row is None:
            raise Problem("not-found")
        return row

    @requires_scope("members:write")
    @blp.arguments(schemas.SsoConnectionIn)
    @blp.response(200, schemas.SsoConnectionOut)
    def put(self, body: dict[str, Any]) -> SsoConnection:
        """The tenant's own OIDC connection (`client_secret` encrypted, never shown)."""
        return services.put_sso_connection(db.session, **body)

    @requires_scope("members:write")
    @blp.response(204)
    @blp.alt_response(404, description="The tenant has no connection of its own.")
    def delete(self) -> None:
        """The platform's default connection applies again."""
        services.delete_sso_connection(db.session)
