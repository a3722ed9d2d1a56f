"""Invitations by link: an owner makes one with a role; whoever opens it chooses a username and password and
joins the dataset with that role. A link works once (its row is locked while it is used), until it is
revoked or expires (ICM_INVITATION_DAYS, 7 by default)."""

from __future__ import annotations

import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import password_validation
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.http import Http404
from django.urls import reverse
from django.utils import timezone

from . import permissions
from .memberships import new_user
from .models import Dataset, Invitation, Membership, Role
from .selectors import role_of


def create_invitation(*, actor: AbstractBaseUser, dataset: Dataset, role: str) -> Invitation:
    permissions.require(role_of(actor, dataset), permissions.MANAGE, "Inviting members")
    if role not in Role.values:
        raise ValidationError({"role": f"role must be one of {', '.join(Role.values)}"})
    return Invitation.objects.create(dataset=dataset, role=role, key=secrets.token_urlsafe(32), created_by=actor,
                                     expires=timezone.now() + timedelta(days=settings.ICM_INVITATION_DAYS))


def invitations_of(*, actor: AbstractBaseUser, dataset: Dataset) -> QuerySet[Invitation]:
    permissions.require(role_of(actor, dataset), permissions.MANAGE, "Seeing invitations")
    return Invitation.objects.filter(dataset=dataset).select_related("created_by", "accepted_by")


def revoke_invitation(*, actor: AbstractBaseUser, invitation: Invitation) -> Invitation:
    permissions.require(role_of(actor, invitation.dataset), permissions.MANAGE, "Revoking invitations")
    if invitation.status != "open":
        raise ValidationError({"invitation": f"the invitation is {invitation.status}; only open ones are revoked"})
    Invitation.objects.filter(pk=invitation.pk, accepted__isnull=True).update(revoked=timezone.now())
    invitation.refresh_from_db()
    return invitation


def open_invitation(key: str) -> Invitation:
    """The open invitation with this key; anything else (unknown, used, revoked, expired) is a 404 that does
    not say which."""
    invitation = Invitation.objects.select_related("dataset").filter(key=str(key)[:64]).first()
    if invitation is None or invitation.status != "open":
        raise Http404("This invitation link does not work: it was used, revoked or has expired, or never existed.")
    return invitation


def accept_invitation(*, key: str, username: str, password: str) -> AbstractBaseUser:
    """Make the account and its membership, once: the invitation's row is locked and checked again inside
    the transaction, so concurrent acceptances of one link make one account."""
    username = (username or "").strip()
    with transaction.atomic():
        invitation = open_invitation(key)
        invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
        if invitation.status != "open":
            raise Http404("This invitation link does not work: it was used, revoked or has expired.")
        user = new_user(username, taken="that username is taken; choose another")
        try:
            password_validation.validate_password(password or "", user)
        except ValidationError as exc:
            raise ValidationError({"password": exc.messages}) from None
        user.set_password(password)
        user.save()
        Membership.objects.create(dataset=invitation.dataset, user=user, role=invitation.role)
        invitation.accepted, invitation.accepted_by = timezone.now(), user
        invitation.save(update_fields=["accepted", "accepted_by"])
    return user


def invitation_path(invitation: Invitation) -> str:
    return reverse("invitation", kwargs={"key": invitation.key})
