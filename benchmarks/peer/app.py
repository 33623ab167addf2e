"""The peer Tenantry is measured against: the FastAPI + fastapi-users monolith a
team would write instead, set up as its documentation suggests.

JWT bearer tokens, users in PostgreSQL through SQLAlchemy + asyncpg, bcrypt at
cost 12; `GET /me` answers the caller's own record (fastapi-users reads it from
the database on every request). Runs only in benchmarks/.peer-venv:
`uvicorn benchmarks.peer.app:app --workers 2`, with PEER_DATABASE_URL set.
Not part of Tenantry, never imported by it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncGenerator
from typing import Any

from fastapi import Depends, FastAPI
from fastapi_users import BaseUserManager, FastAPIUsers, UUIDIDMixin, schemas
from fastapi_users.authentication import AuthenticationBackend, BearerTransport, JWTStrategy
from fastapi_users.db import SQLAlchemyBaseUserTableUUID, SQLAlchemyUserDatabase
from fastapi_users.password import PasswordHelper
from pwdlib import PasswordHash
from pwdlib.hashers.bcrypt import BcryptHasher
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

DATABASE_URL = os.environ.get("PEER_DATABASE_URL", "postgresql+asyncpg://localhost/peer")
SECRET = os.environ.get("PEER_JWT_SECRET", "peer-benchmark-secret-not-for-production-0123456789")


class Base(DeclarativeBase):
    pass


class User(SQLAlchemyBaseUserTableUUID, Base):
    pass


class UserRead(schemas.BaseUser[uuid.UUID]):
    pass


class UserCreate(schemas.BaseUserCreate):
    pass


engine = create_async_engine(DATABASE_URL, pool_size=10, max_overflow=10)
sessions = async_sessionmaker(engine, expire_on_commit=False)
password_helper = PasswordHelper(PasswordHash((BcryptHasher(rounds=12),)))


async def get_session() -> AsyncGenerator[AsyncSession, None]:
    async with sessions() as session:
        yield session


async def get_user_db(session: AsyncSession = Depends(get_session)) -> AsyncGenerator[Any, None]:
    yield SQLAlchemyUserDatabase(session, User)


class UserManager(UUIDIDMixin, BaseUserManager[User, uuid.UUID]):
    reset_password_token_secret = SECRET
    verification_token_secret = SECRET


async def get_user_manager(user_db: Any = Depends(get_user_db)) -> AsyncGenerator[UserManager, None]:
    yield UserManager(user_db, password_helper)


def get_jwt_strategy() -> JWTStrategy[User, uuid.UUID]:
    return JWTStrategy(secret=SECRET, lifetime_seconds=3600)


backend = AuthenticationBackend(
    name="jwt", transport=BearerTransport(tokenUrl="auth/jwt/login"), get_strategy=get_jwt_strategy
)
users = FastAPIUsers[User, uuid.UUID](get_user_manager, [backend])
current_active_user = users.current_user(active=True)

app = FastAPI()
app.include_router(users.get_auth_router(backend), prefix="/auth/jwt")
app.include_router(users.get_register_router(UserRead, UserCreate), prefix="/auth")


@app.get("/me", response_model=UserRead)
async def me(user: User = Depends(current_active_user)) -> User:
    return user


async def create_schema() -> None:
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    await engine.dispose()


if __name__ == "__main__":
    import asyncio

    asyncio.run(create_schema())
