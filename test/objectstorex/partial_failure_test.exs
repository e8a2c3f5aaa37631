defmodule ObjectStoreX.PartialFailureTest do
  # Every failure accounted for: exact results when part of a call fails, nothing committed
  # that was not read in full, nothing left behind by a task that is cancelled, and no secret
  # in any message. Not async: it counts the VM's live native streams and sets an environment
  # variable.
  use ExUnit.Case, async: false

  import ObjectStoreX.TestHelpers
  alias ObjectStoreX.{Error, Native, TestHTTP}

  @mib 1_048_576

  describe "delete_many/3 accounts for every path when whole bulk requests fail" do
    test "S3 at a closed port: 1,500 paths over two bulk requests" do
      store = closed_port_s3_store!()

      paths = for i <- 1..1_500, do: "k/#{i}"
      assert {:ok, deleted, failed} = ObjectStoreX.delete_many(store, paths)
      assert deleted == 0
      assert Enum.sort(Enum.map(failed, &elem(&1, 0))) == Enum.sort(paths)
      assert Enum.all?(failed, fn {_, e} -> match?(%Error{}, e) end)
    end

    test "Azure at a closed port: 600 paths over three bulk requests" do
      {:ok, store} =
        ObjectStoreX.new(:azure,
          account: "devstoreaccount1",
          container: "c",
          access_key: Base.encode64("not-a-real-key"),
          endpoint: "http://127.0.0.1:1/devstoreaccount1",
          allow_http: true,
          from_env: false,
          retry: [max_retries: 0]
        )

      paths = for i <- 1..600, do: "k/#{i}"
      assert {:ok, deleted, failed} = ObjectStoreX.delete_many(store, paths)
      assert deleted + length(failed) == 600
      assert deleted == 0
    end
  end

  describe "a source that changes while it is copied" do
    @describetag :tmp_dir

    # The file is truncated from :on_progress, i.e. while the native copy is reading it.
    for {name, run} <- [
          {"transfer/5",
           quote do
             fn src, dest, opts ->
               ObjectStoreX.transfer(src, "src.bin", dest, "dst.bin", opts)
             end
           end},
          {"upload_file/4",
           quote do
             fn src, dest, opts ->
               ObjectStoreX.upload_file(dest, "dst.bin", Path.join(src.root, "src.bin"), opts)
             end
           end}
        ] do
      test "#{name} fails and leaves the destination as it was", %{tmp_dir: dir} do
        src = ObjectStoreX.new!(:local, root: Path.join(dir, "src"))
        dest = ObjectStoreX.new!(:local, root: Path.join(dir, "dest"))
        file = Path.join([dir, "src", "src.bin"])
        # Sparse, so it is large (slow enough to be cut mid-copy) without costing disk.
        {:ok, fd} = :file.open(file, [:write, :raw])
        {:ok, _} = :file.position(fd, 512 * @mib - 1)
        :ok = :file.write(fd, "x")
        :ok = :file.close(fd)
        :ok = ObjectStoreX.put(dest, "dst.bin", "the previous version")
        me = self()

        on_progress = fn %{bytes: done, total: total} ->
          if done < total and not Process.get(:cut, false) do
            Process.put(:cut, true)
            File.write!(file, "short")
            send(me, :cut)
          end
        end

        opts = [part_size: 5 * @mib, max_concurrency: 1, on_progress: on_progress]
        result = unquote(run).(src, dest, opts)
        assert_received :cut, "the copy finished before the file could be cut; make it larger"
        assert {:error, %Error{reason: :precondition_failed}} = result
        assert ObjectStoreX.get!(dest, "dst.bin") == "the previous version"
      end
    end
  end

  # A server that sends the head and a little of the body, then holds the connection open.
  defp stalling_server do
    {port, server} =
      TestHTTP.serve(fn sock ->
        {:ok, request, _} = TestHTTP.read_head(sock)
        size = 10 * @mib

        head =
          case TestHTTP.header(request, "range") do
            nil ->
              "HTTP/1.1 200 OK\r\ncontent-length: #{size}\r\n"

            "bytes=" <> spec ->
              [a, b] = String.split(spec, "-") |> Enum.map(&String.to_integer/1)

              "HTTP/1.1 206 Partial Content\r\ncontent-length: #{b - a + 1}\r\n" <>
                "content-range: bytes #{a}-#{b}/#{size}\r\n"
          end

        :gen_tcp.send(sock, [
          head,
          ~s(etag: "v1"\r\nlast-modified: Sun, 22 Nov 2026 10:00:00 GMT\r\n\r\n),
          if(elem(request.start, 0) == "HEAD", do: "", else: "abc")
        ])

        Process.sleep(:infinity)
      end)

    on_exit(fn -> Process.exit(server, :kill) end)
    ObjectStoreX.new!(:http, url: "http://127.0.0.1:#{port}", allow_http: true)
  end

  describe "download_file/4 leaves no temporary file" do
    @describetag :tmp_dir

    test "when its timeout cancels it", %{tmp_dir: dir} do
      store = stalling_server()
      target = Path.join(dir, "out.bin")

      assert {:error, %Error{reason: :timeout}} =
               ObjectStoreX.download_file(store, "obj", target, timeout: 300)

      assert wait_until(fn -> File.ls!(dir) == [] end, 40)
      assert drain_mailbox() == []
    end

    test "when the caller dies", %{tmp_dir: dir} do
      store = stalling_server()
      target = Path.join(dir, "out.bin")
      pid = spawn(fn -> ObjectStoreX.download_file(store, "obj", target) end)
      assert wait_until(fn -> File.ls!(dir) != [] end, 40)
      Process.exit(pid, :kill)
      assert wait_until(fn -> File.ls!(dir) == [] end, 40)
    end
  end

  test "a stream dropped while suspended stops its producer" do
    store = ObjectStoreX.new!(:memory)
    :ok = ObjectStoreX.put(store, "big", :binary.copy("x", 8 * @mib))
    {_, streams_before, _} = Native.native_stats()
    me = self()

    holder =
      spawn(fn ->
        stream = ObjectStoreX.Stream.download(store, "big", chunk_size: 65_536, prefetch: 1)

        {:suspended, _chunk, _cont} =
          Enumerable.reduce(stream, {:cont, nil}, fn chunk, _ -> {:suspend, chunk} end)

        send(me, :suspended)

        receive do
          :collect -> :erlang.garbage_collect()
        end

        send(me, :collected)
        Process.sleep(:infinity)
      end)

    assert_receive :suspended, 5_000
    {_, streams_during, _} = Native.native_stats()
    assert streams_during == streams_before + 1
    send(holder, :collect)
    assert_receive :collected, 5_000
    # The process is alive, so only the resource's destructor can have stopped the producer.
    assert wait_until(fn -> elem(Native.native_stats(), 1) == streams_before end, 40)
    assert Process.alive?(holder)
    Process.exit(holder, :kill)
  end

  test "a panic in a stream producer arrives as :internal with its message" do
    ref = make_ref()
    _stream = Native.stream_test_panic(ref, "deliberate failure 4711")
    assert_receive {^ref, {:error, {:internal, message, false}}}, 5_000
    assert message =~ "deliberate failure 4711"
  end

  describe "no secret in any message" do
    test "the password of an :http store URL" do
      {:ok, store} =
        ObjectStoreX.new(:http,
          url: "http://alice:Pa55w0rdXYZ@127.0.0.1:1/dav",
          allow_http: true,
          retry: [max_retries: 0]
        )

      assert {:error, %Error{message: message}} = ObjectStoreX.get(store, "x")
      refute message =~ "Pa55w0rdXYZ"
      refute inspect(store) =~ "Pa55w0rdXYZ"
      error = catch_error(ObjectStoreX.Stream.download(store, "x") |> Enum.to_list())
      refute Exception.message(error) =~ "Pa55w0rdXYZ"
    end

    test "credentials from the environment, quoted back by the server" do
      token = "EnvSessionToken" <> Base.encode16(:crypto.strong_rand_bytes(8))

      # In a child VM: the native builder reads the OS environment, which System.put_env/2 does
      # not change. The server quotes the token back in an element no pattern knows.
      code = """
      alias ObjectStoreX.TestHTTP
      {port, _} =
        TestHTTP.serve(fn sock ->
          {:ok, request, _} = TestHTTP.read_head(sock)
          quoted = TestHTTP.header(request, "x-amz-security-token")
          body = "<Error><Code>SignatureDoesNotMatch</Code><Echo>\#{quoted}</Echo></Error>"
          :gen_tcp.send(sock, ["HTTP/1.1 403 Forbidden\\r\\ncontent-length: \#{byte_size(body)}",
            "\\r\\nconnection: close\\r\\n\\r\\n", body])
        end)
      {:ok, store} = ObjectStoreX.new(:s3, bucket: "b", region: "us-east-1",
        endpoint: "http://127.0.0.1:\#{port}", access_key_id: "AKIAEXAMPLE",
        secret_access_key: "SecretFromOptions123", allow_http: true, retry: [max_retries: 0])
      {:error, error} = ObjectStoreX.get(store, "x")
      IO.puts("MESSAGE " <> error.message)
      """

      {output, 0} = in_child_vm(code, [{"AWS_SESSION_TOKEN", token}])
      assert output =~ "SignatureDoesNotMatch"
      # The server did receive the token: only redaction keeps it out of the message.
      assert output =~ "<Echo>[REDACTED]</Echo>"
      refute output =~ token
      refute output =~ "SecretFromOptions123"
    end
  end
end
