module github.com/map646/map646

go 1.26

require (
	github.com/BurntSushi/toml v1.6.0
	github.com/gopacket/gopacket v1.3.1
)
