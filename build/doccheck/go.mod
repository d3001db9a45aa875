module github.com/meshdemo/meshdemo/build/doccheck

go 1.26.0

require (
	github.com/yuin/goldmark v1.8.7
	mvdan.cc/sh/v3 v3.14.1
)

require github.com/meshdemo/meshdemo/deploy/matrix v0.0.0-00010101000000-000000000000

require go.yaml.in/yaml/v3 v3.0.4

replace github.com/meshdemo/meshdemo/deploy/matrix => ../../deploy/matrix
