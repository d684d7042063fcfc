from __future__ import annotations

from typing import Any

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser

PASSWORD = "correct horse battery staple"


class UserFactory(factory.django.DjangoModelFactory[AbstractBaseUser]):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")

    @factory.post_generation
    def password(user: AbstractBaseUser, create: bool, extracted: Any, **kwargs: Any) -> None:
        user.set_password(extracted or PASSWORD)
        if create:
            user.save(update_fields=["password"])
