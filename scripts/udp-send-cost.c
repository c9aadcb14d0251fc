/*
 * Cost of sending UDP datagrams on loopback, one sendto per datagram against
 * one sendmmsg per batch (docs/BENCHMARKS.md, "Where an MC server's time
 * goes"): N datagrams to N receiving sockets (as an MC server's fan-out to
 * its members), process CPU time per datagram, receivers drained after each
 * round. Not part of the build or the tests.
 *
 *   gcc -O2 -o /tmp/udp-send-cost scripts/udp-send-cost.c
 *   /tmp/udp-send-cost MODE LEN [PMTUDISC]
 *
 * MODE 0: sendto per datagram; 1: sendmmsg. LEN: datagram octets.
 * PMTUDISC (optional): IP_MTU_DISCOVER value for the sending socket
 * (2 = IP_PMTUDISC_DO).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>
#define N 200
#define ROUNDS 2000
static double now(){struct timespec t;clock_gettime(CLOCK_PROCESS_CPUTIME_ID,&t);return t.tv_sec+t.tv_nsec*1e-9;}
int main(int argc,char**argv){
  int mode=atoi(argv[1]); int len=atoi(argv[2]);
  int rx[N]; struct sockaddr_in addr[N];
  for(int i=0;i<N;i++){rx[i]=socket(AF_INET,SOCK_DGRAM,0);struct sockaddr_in a={.sin_family=AF_INET,.sin_addr.s_addr=htonl(0x7f000001)};bind(rx[i],(void*)&a,sizeof a);socklen_t l=sizeof a;getsockname(rx[i],(void*)&a,&l);addr[i]=a;int big=1<<22;setsockopt(rx[i],SOL_SOCKET,SO_RCVBUF,&big,sizeof big);}
  int tx=socket(AF_INET,SOCK_DGRAM,0); if(argc>3){int v=atoi(argv[3]); setsockopt(tx,IPPROTO_IP,IP_MTU_DISCOVER,&v,sizeof v);}
  char buf[2000]; memset(buf,'x',sizeof buf);
  struct mmsghdr msgs[N]; struct iovec iov[N];
  for(int i=0;i<N;i++){iov[i].iov_base=buf;iov[i].iov_len=len;memset(&msgs[i],0,sizeof msgs[i]);msgs[i].msg_hdr.msg_name=&addr[i];msgs[i].msg_hdr.msg_namelen=sizeof addr[i];msgs[i].msg_hdr.msg_iov=&iov[i];msgs[i].msg_hdr.msg_iovlen=1;}
  char rb[2000];
  double ts=0,tr=0;
  for(int r=0;r<ROUNDS;r++){
    double t0=now();
    if(mode==0){for(int i=0;i<N;i++) sendto(tx,buf,len,0,(void*)&addr[i],sizeof addr[i]);}
    else {int s=0; while(s<N){int k=sendmmsg(tx,msgs+s,N-s,0); if(k<=0)break; s+=k;}}
    double t1=now(); ts+=t1-t0;
    for(int i=0;i<N;i++) recv(rx[i],rb,sizeof rb,MSG_DONTWAIT);
    tr+=now()-t1;
  }
  printf("mode %d len %d: send %.3f us/datagram (recv drain %.3f)\n",mode,len,ts/ROUNDS/N*1e6,tr/ROUNDS/N*1e6);
}
