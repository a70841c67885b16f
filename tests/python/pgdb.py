"""Database helpers shared by the test modules: URLs, fresh databases, the project root."""
from __future__ import annotations

import uuid
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[2]


def db_url(cluster: str, name: str) -> str:
    """The URL of database ``name`` on the cluster whose URL is ``cluster``."""
    return cluster.rsplit("/", 1)[0] + "/" + name


def create_database(cluster_url: str, template: str) -> str:
    """Creates a fresh database from ``template``; returns its name."""
    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(cluster_url, autocommit=True) as conn:
        conn.execute(f'create database "{name}" template "{template}"')
    return name


def drop_database(cluster_url: str, name: str) -> None:
    """Drops database ``name``, disconnecting whoever is still on it."""
    with psycopg.connect(cluster_url, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')
