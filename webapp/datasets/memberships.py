"""Writes to a dataset's members: adding, inviting (an account with a one-time link), changing a role and
removing, each checked against the actor's role; a dataset always keeps an owner."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from . import permissions
from .models import Dataset, Membership, Role
from .selectors import role_of


def _owner_count(dataset: Dataset) -> int:
    return Membership.objects.filter(dataset=dataset, role=Role.OWNER).count()


def add_member(*, actor: AbstractBaseUser, dataset: Dataset, username: str, role: str) -> Membership:
    permissions.require(role_of(actor, dataset), permissions.MANAGE, "Managing members")
    if role not in Role.values:
        raise ValidationError({"role": f"role must be one of {', '.join(Role.values)}"})
    User = get_user_model()
    try:
        user = User.objects.get(username__iexact=(username or "").strip())
    except User.DoesNotExist:
        raise ValidationError({"username": f"no user named {username!r}"}) from None
    if Membership.objects.filter(dataset=dataset, user=user).exists():
        raise ValidationError({"username": f"{username} is already a member; change their role instead"})
    return Membership.objects.create(dataset=dataset, user=user, role=role)


def new_user(username: str, *, taken: str) -> AbstractBaseUser:
    """An unsaved account named `username`, checked: the name's own rules, and no account already named so
    whatever the case (ValidationError on `username`, saying `taken` for a name in use)."""
    User = get_user_model()
    user = User(username=username)
    if username and User.objects.filter(username__iexact=username).exists():
        raise ValidationError({"username": taken})
    try:
        user.full_clean(exclude=["password"])  # the username's own rules (characters, length)
    except ValidationError as exc:
        raise ValidationError({"username": " ".join(exc.message_dict.get("username", exc.messages))}) from None
    return user


def invite_member(*, actor: AbstractBaseUser, dataset: Dataset, username: str, role: str) -> tuple[Membership, str]:
    """Bring in someone who has no account yet: the account (with no password), their membership, and the
    path of a one-time link to set their password (Django's password-reset token: it expires after
    PASSWORD_RESET_TIMEOUT and once the password is set). The owner sends the link; nothing is emailed."""
    from django.contrib.auth.tokens import default_token_generator
    from django.urls import reverse
    from django.utils.encoding import force_bytes
    from django.utils.http import urlsafe_base64_encode

    permissions.require(role_of(actor, dataset), permissions.MANAGE, "Inviting members")
    if role not in Role.values:
        raise ValidationError({"role": f"role must be one of {', '.join(Role.values)}"})
    username = (username or "").strip()
    user = new_user(username, taken=f"{username} already has an account: add them as a member")
    try:
        with transaction.atomic():
            user.set_unusable_password()
            user.save()
            membership = Membership.objects.create(dataset=dataset, user=user, role=role)
    except IntegrityError:  # the same name taken a moment ago, by another request
        raise ValidationError({"username": f"{username} already has an account: add them as a member"}) from None
    link = reverse("password-set", kwargs={"uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
                                           "token": default_token_generator.make_token(user)})
    return membership, link


def set_member_role(*, actor: AbstractBaseUser, membership: Membership, role: str) -> Membership:
    permissions.require(role_of(actor, membership.dataset), permissions.MANAGE, "Managing members")
    if role not in Role.values:
        raise ValidationError({"role": f"role must be one of {', '.join(Role.values)}"})
    with transaction.atomic():
        Dataset.objects.select_for_update().filter(pk=membership.dataset_id).first()
        if membership.role == Role.OWNER and role != Role.OWNER and _owner_count(membership.dataset) <= 1:
            raise ValidationError({"role": "a dataset keeps at least one owner"})
        membership.role = role
        membership.save(update_fields=["role"])
    return membership


def remove_member(*, actor: AbstractBaseUser, membership: Membership) -> None:
    permissions.require(role_of(actor, membership.dataset), permissions.MANAGE, "Managing members")
    with transaction.atomic():
        Dataset.objects.select_for_update().filter(pk=membership.dataset_id).first()
        if membership.role == Role.OWNER and _owner_count(membership.dataset) <= 1:
            raise ValidationError({"user": "a dataset keeps at least one owner"})
        membership.delete()
