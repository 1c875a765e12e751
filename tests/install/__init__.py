"""Tests of how users meet the product: install manifests, samples, Argo CD, Dockerfiles, demo."""
