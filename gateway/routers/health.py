"""Placeholder until this router is written."""

from fastapi import APIRouter

router = APIRouter()
