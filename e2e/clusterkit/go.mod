module github.com/pynomaly/pynomaly-operator/e2e/clusterkit

go 1.25.0
