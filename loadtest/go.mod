module github.com/meshdemo/meshdemo/loadtest

go 1.26
