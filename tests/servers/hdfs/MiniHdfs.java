// A real HDFS for the tests: Hadoop's MiniDFSCluster (a NameNode and one
// DataNode in this JVM) with the NameNode on 127.0.0.1:PORT and its data in
// DIR. Prints "HDFS ready" once it serves requests, then runs until killed.
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.hdfs.MiniDFSCluster;

public class MiniHdfs {
    public static void main(String[] args) throws Exception {
        if (args.length != 2) {
            System.err.println("usage: MiniHdfs PORT DIR");
            System.exit(2);
        }
        Configuration conf = new Configuration();
        conf.set(MiniDFSCluster.HDFS_MINIDFS_BASEDIR, args[1]);
        // Tests write as whoever runs them, into a fresh file system.
        conf.setBoolean("dfs.permissions.enabled", false);
        MiniDFSCluster cluster = new MiniDFSCluster.Builder(conf)
            .nameNodePort(Integer.parseInt(args[0]))
            .numDataNodes(1)
            .build();
        cluster.waitActive();
        System.out.println("HDFS ready at hdfs://127.0.0.1:" + cluster.getNameNodePort());
        Thread.currentThread().join();
    }
}
