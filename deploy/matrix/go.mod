module github.com/meshdemo/meshdemo/deploy/matrix

go 1.26.0
