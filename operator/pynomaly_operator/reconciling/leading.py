"""Leader election on a ``coordination.k8s.io/v1`` Lease: only the leader reconciles.

Two or more operator replicas run at once (warm standbys: every replica watches and keeps
kopf's indexes filled), but only the holder of the Lease triggers reconciles and writes. The
algorithm is client-go's ``leaderelection`` (what controller-runtime operators use), so the
Lease reads the same in ``kubectl get lease`` as any other controller's:

- every ``retry_seconds`` each replica GETs the Lease; the holder renews it (an update with
  the resourceVersion it read, so a concurrent change fails with 409 instead of being
  overwritten); a non-holder takes it over only when it is free (no holder, released on
  shutdown) or when the record has not changed for ``lease_seconds`` *as measured by the
  non-holder's own clock* since it first saw that record (no trust in other nodes' clocks);
- the holder considers itself leader only until ``renew_deadline_seconds`` after it *sent*
  its last successful renew. That deadline is shorter than the lease duration, so a leader
  cut off from the API server stops writing before anyone else may take over: two replicas
  never write at once (``may_write`` gates every write in ``applying.Applier``);
- on a graceful shutdown the holder releases the Lease (empty holder), so a rolling update
  hands over at once rather than after ``lease_seconds``.

A killed leader is replaced within ``lease_seconds + retry_seconds`` (12 s by default).
Why a Lease and not kopf's peering: peering needs two extra CRDs and cluster-wide RBAC on
them, pauses only kopf's own handlers (the resync loop here is not one) and treats equal
priorities as a conflict to warn about rather than an election; a Lease is a built-in kind,
needs one namespaced Role, and is what cluster admins already read for other controllers.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from lightkube.core.exceptions import ApiError
from lightkube.models.coordination_v1 import LeaseSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.coordination_v1 import Lease

logger = logging.getLogger(__name__)

Callback = Callable[[], Awaitable[None]]


class NotLeadingError(Exception):
    """A write was attempted by a replica that does not hold the Lease (it is dropped)."""


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class Elector:
    """Acquires and renews one Lease; ``may_write()`` says whether this replica may write."""

    def __init__(
        self,
        client: Any,  # lightkube.AsyncClient (Any: its overloads want concrete resources)
        *,
        name: str,
        namespace: str,
        identity: str,
        lease_seconds: float = 10.0,
        renew_deadline_seconds: float = 7.0,
        retry_seconds: float = 2.0,
        on_started: Callback | None = None,
        on_stopped: Callback | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not retry_seconds < renew_deadline_seconds < lease_seconds:
            raise ValueError("need retry_seconds < renew_deadline_seconds < lease_seconds")
        self.client = client
        self.name, self.namespace, self.identity = name, namespace, identity
        self.lease_seconds = lease_seconds
        self.renew_deadline_seconds = renew_deadline_seconds
        self.retry_seconds = retry_seconds
        self.on_started, self.on_stopped = on_started, on_stopped
        self.clock = clock
        self._valid_until = 0.0  # monotonic: leader until then (set by a successful renew)
        self._leading = False
        # The last Lease record seen from someone else, and when this replica first saw it.
        self._seen: tuple[str, str] | None = None
        self._seen_at = 0.0
        self.transitions = 0  # how often this replica became leader (for logs and tests)

    def may_write(self) -> bool:
        """Whether this replica holds the Lease and its last renew is recent enough."""
        return self._leading and self.clock() < self._valid_until

    async def run(self) -> None:
        """Try to acquire or renew every ``retry_seconds`` until cancelled."""
        try:
            while True:
                await self.step()
                await asyncio.sleep(self.retry_seconds)
        finally:
            await self._set_leading(False)

    async def step(self) -> None:
        """One attempt: acquire the Lease when it is free or expired, renew it when held."""
        sent = self.clock()
        try:
            held = await self._try_acquire_or_renew(sent)
        except Exception as exc:  # any failure (API server away, 5xx) means "not renewed":
            # the renew deadline then decides when this replica stops writing.
            logger.warning("lease %s/%s: %s", self.namespace, self.name, exc)
            held = False
        if held:
            self._valid_until = sent + self.renew_deadline_seconds
            await self._set_leading(True)
        elif self.clock() >= self._valid_until:
            await self._set_leading(False)

    async def release(self) -> None:
        """Give the Lease up (graceful shutdown): followers take over without waiting."""
        await self._set_leading(False)
        with contextlib.suppress(ApiError, OSError, TimeoutError):
            lease = await self.client.get(Lease, self.name, namespace=self.namespace)
            if lease.spec is not None and lease.spec.holderIdentity == self.identity:
                lease.spec.holderIdentity = None
                lease.spec.acquireTime = None
                lease.spec.renewTime = None
                await self.client.replace(lease, namespace=self.namespace)
                logger.info("released lease %s/%s", self.namespace, self.name)

    async def _set_leading(self, leading: bool) -> None:
        if leading == self._leading:
            return
        self._leading = leading
        if leading:
            self.transitions += 1
            logger.info("leading: %s holds lease %s/%s", self.identity, self.namespace, self.name)
            if self.on_started is not None:
                await self.on_started()
        else:
            self._valid_until = 0.0
            logger.info("not leading: %s stopped writing", self.identity)
            if self.on_stopped is not None:
                await self.on_stopped()

    async def _try_acquire_or_renew(self, sent: float) -> bool:
        duration = max(1, round(self.lease_seconds))
        try:
            lease = await self.client.get(Lease, self.name, namespace=self.namespace)
        except ApiError as exc:
            if exc.status.code != 404:
                raise
            fresh = Lease(
                metadata=ObjectMeta(name=self.name, namespace=self.namespace),
                spec=LeaseSpec(
                    holderIdentity=self.identity,
                    leaseDurationSeconds=duration,
                    acquireTime=_now(),
                    renewTime=_now(),
                    leaseTransitions=0,
                ),
            )
            return await self._write(self.client.create(fresh, namespace=self.namespace))
        spec = lease.spec or LeaseSpec()
        holder = spec.holderIdentity or ""
        if holder != self.identity:
            record = (holder, str(lease.metadata.resourceVersion if lease.metadata else ""))
            if record != self._seen:
                self._seen, self._seen_at = record, sent
            if holder and sent - self._seen_at < self.lease_seconds:
                return False  # held by a live leader
            spec.leaseTransitions = (spec.leaseTransitions or 0) + 1
            spec.acquireTime = _now()
        spec.holderIdentity = self.identity
        spec.leaseDurationSeconds = duration
        spec.renewTime = _now()
        lease.spec = spec
        return await self._write(self.client.replace(lease, namespace=self.namespace))

    async def _write(self, request: Awaitable[Any]) -> bool:
        try:
            await request
        except ApiError as exc:
            if exc.status.code in (404, 409):  # someone else wrote first: not ours this round
                return False
            raise
        return True
