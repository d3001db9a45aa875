module github.com/meshdemo/meshdemo/e2e

go 1.26
