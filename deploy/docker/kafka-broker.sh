#!/bin/sh
# One Kafka broker of deploy/compose.yaml: KRaft, broker and controller in one process,
# node id and quorum from the environment, storage formatted on first start.
#   KAFKA_NODE_ID        1, 2 or 3
#   KAFKA_VOTERS         1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093
#   KAFKA_CLUSTER_ID     the same base64 id on every broker
#   KAFKA_HEAP           heap (256m)
set -eu
data=/data/kafka
props=$data/server.properties
host=$(hostname)
cat > "$props" <<PROPS
process.roles=broker,controller
node.id=${KAFKA_NODE_ID}
controller.quorum.voters=${KAFKA_VOTERS}
listeners=PLAINTEXT://0.0.0.0:9092,CONTROLLER://0.0.0.0:9093
advertised.listeners=PLAINTEXT://${host}:9092
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$data/log
num.partitions=2
default.replication.factor=3
min.insync.replicas=2
auto.create.topics.enable=false
offsets.topic.replication.factor=3
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=2
group.initial.rebalance.delay.ms=0
PROPS
jars="$(ls -d "$PROGNOS_CACHE_DIR"/kafka-*/)*"
java_opts="-Xms${KAFKA_HEAP:-256m} -Xmx${KAFKA_HEAP:-256m} -XX:+UseSerialGC -Djava.awt.headless=true"
if [ ! -f "$data/log/meta.properties" ]; then
  java $java_opts -cp "$jars" kafka.tools.StorageTool format \
    "--cluster-id=${KAFKA_CLUSTER_ID}" "--config=$props"
fi
exec java $java_opts -cp "$jars" kafka.Kafka "$props"
